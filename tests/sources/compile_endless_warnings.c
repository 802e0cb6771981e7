/* Hostile: every level includes this file twice and warns, so the
   preprocessor emits warnings (and depth errors) for 2^200 inclusions. */
#warning endless warnings
#include __FILE__
#include __FILE__
int main(void) { return 0; }
