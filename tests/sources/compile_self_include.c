/* Hostile: includes itself, without a guard. */
#include __FILE__
int main(void) { return 0; }
