/* Reads the time-stamp counter and the clocks twice each and prints what
 * it saw, one line per source: "rdtsc A B", "rdtscp A B",
 * "monotonic S.N S.N", "realtime S.N S.N", "gettimeofday S.U S.U",
 * "time T T". With fake_time the supervisor decides these values. Then
 * "vdso N": 1 if its auxiliary vector gives it a vDSO, plus (with argument
 * "maps", which needs its own /proc entry) the number of [vdso] and [vvar]
 * mappings it has. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/time.h>
#include <time.h>
#include <x86intrin.h>

int main(int argc, char **argv) {
    unsigned aux;
    uint64_t t1 = __rdtsc(), t2 = __rdtsc();
    printf("rdtsc %llu %llu\n", (unsigned long long)t1, (unsigned long long)t2);
    t1 = __rdtscp(&aux);
    t2 = __rdtscp(&aux);
    printf("rdtscp %llu %llu\n", (unsigned long long)t1, (unsigned long long)t2);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("monotonic %lld.%09ld %lld.%09ld\n", (long long)a.tv_sec, a.tv_nsec,
           (long long)b.tv_sec, b.tv_nsec);
    clock_gettime(CLOCK_REALTIME, &a);
    clock_gettime(CLOCK_REALTIME, &b);
    printf("realtime %lld.%09ld %lld.%09ld\n", (long long)a.tv_sec, a.tv_nsec,
           (long long)b.tv_sec, b.tv_nsec);
    struct timeval u, v;
    gettimeofday(&u, NULL);
    gettimeofday(&v, NULL);
    printf("gettimeofday %lld.%06ld %lld.%06ld\n", (long long)u.tv_sec, (long)u.tv_usec,
           (long long)v.tv_sec, (long)v.tv_usec);
    time_t x = time(NULL), y = time(NULL);
    printf("time %lld %lld\n", (long long)x, (long long)y);
    int mapped = 0;
    if (argc > 1 && strcmp(argv[1], "maps") == 0) {
        char line[512];
        FILE *f = fopen("/proc/self/maps", "r");
        while (f && fgets(line, sizeof line, f))
            mapped += strstr(line, "[vdso]") || strstr(line, "[vvar");
    }
    printf("vdso %d %d\n", getauxval(AT_SYSINFO_EHDR) != 0, mapped);
    return 0;
}
