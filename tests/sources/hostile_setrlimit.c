#define _GNU_SOURCE
/* Tries to raise its limits. "report": exit 0 iff every attempt failed and
 * the limits are unchanged. "cpu": then loops forever (must still be TLE). */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
int main(int argc, char **argv) {
    int resources[] = {RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NPROC};
    int raised = 0;
    for (int i = 0; i < 4; i++) {
        struct rlimit before, big = {RLIM_INFINITY, RLIM_INFINITY}, after;
        getrlimit(resources[i], &before);
        if (setrlimit(resources[i], &big) == 0) raised++;
        if (prlimit(0, resources[i], &big, NULL) == 0) raised++;
        getrlimit(resources[i], &after);
        if (after.rlim_cur != before.rlim_cur) raised++;
    }
    printf("raised %d\n", raised);
    fflush(stdout);
    if (argc > 1 && !strcmp(argv[1], "cpu")) for (volatile unsigned long x = 0;; x++) ;
    return raised != 0;
}
