/* Burns about argv[1] ms of CPU, then prints the kernel's CPU clock of the
 * whole process (CLOCK_PROCESS_CPUTIME_ID) in ns: the reference the
 * supervisor's time_used is compared with. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static long long cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}
int main(int argc, char **argv) {
    long long target = (argc > 1 ? atoll(argv[1]) : 1000) * 1000000LL;
    volatile unsigned long x = 1;
    while (cpu_ns() < target)
        for (int i = 0; i < 1000000; i++) x = x * 6364136223846793005UL + 1442695040888963407UL;
    printf("%lld\n", cpu_ns());
    return 0;
}
