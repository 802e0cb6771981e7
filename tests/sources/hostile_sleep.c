/* Sleeps forever (no CPU): TLE by the wall clock. */
#include <unistd.h>
int main(void) { for (;;) pause(); }
