/* Ignores SIGXCPU (the soft RLIMIT_CPU signal) and spins: still TLE. */
#include <signal.h>
int main(void) {
    signal(SIGXCPU, SIG_IGN);
    for (volatile unsigned long x = 0;; x++) ;
}
