/* Hostile: the preprocessor would read random bytes forever. */
#include "/dev/random"
int main(void) { return 0; }
