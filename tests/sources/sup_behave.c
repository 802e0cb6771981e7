/* Ordinary behaviours: "ok" prints hello; "exit N" returns N; "segv",
 * "abort" crash; "cat" copies stdin to stdout; "stderr" writes to both
 * streams; "stat PATH" queries a path; "uid" prints its uid and gid; "state"
 * prints what it inherited: its open descriptors, its blocked signals, the
 * dispositions of SIGPIPE and SIGXFSZ (1 = default) and how many CPUs it may
 * run on. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "ok";
    if (!strcmp(what, "exit")) return atoi(argv[2]);
    if (!strcmp(what, "segv")) { raise(SIGSEGV); }
    if (!strcmp(what, "abort")) abort();
    if (!strcmp(what, "cat")) {
        int c;
        while ((c = getchar()) != EOF) putchar(c);
        return 0;
    }
    if (!strcmp(what, "stderr")) { fputs("to stderr\n", stderr); puts("to stdout"); return 0; }
    if (!strcmp(what, "stat")) {
        struct stat st;
        printf("%d %d\n", stat(argv[2], &st), access(argv[2], R_OK));
        return 0;
    }
    if (!strcmp(what, "uid")) { printf("%u %u\n", getuid(), getgid()); return 0; }
    if (!strcmp(what, "state")) {
        printf("fds");
        for (int fd = 0; fd < 1024; fd++)
            if (fcntl(fd, F_GETFD) != -1) printf(" %d", fd);
        sigset_t mask;
        sigprocmask(SIG_BLOCK, NULL, &mask);
        int blocked = 0;
        for (int sig = 1; sig < NSIG; sig++) blocked += sigismember(&mask, sig) == 1;
        struct sigaction pipe, xfsz;
        sigaction(SIGPIPE, NULL, &pipe);
        sigaction(SIGXFSZ, NULL, &xfsz);
        cpu_set_t cpus;
        int ncpu = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : -1;
        printf("\nblocked %d\ndefault %d %d\ncpus %d\n", blocked,
               pipe.sa_handler == SIG_DFL, xfsz.sa_handler == SIG_DFL, ncpu);
        return 0;
    }
    puts("hello");
    return 0;
}
