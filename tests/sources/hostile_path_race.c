/* Races the tracer's path checks and probes what exists in its world.
 *
 *   race TARGET LINK INODE: three threads flip a shared path buffer between
 *     a harmless missing path and TARGET (or LINK), while the main thread
 *     calls stat, access, readlink and open(O_PATH) on it; prints
 *     "leaks N tries M", N = answers that could only come from TARGET (its
 *     inode) or LINK (its target "sio-secret-link-target"), or any success
 *     on the buffer (the harmless path does not exist).
 *   probe PATH...: prints "PATH visible" or "PATH absent" for each (stat).
 *   pids N: prints the pids 1..N that exist under /proc, one a line, then
 *     "self PID" (its own). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char buf[4096];
static const char *paths[2];
static volatile int stop;

static void *flip(void *arg) {
    (void)arg;
    for (unsigned i = 0; !stop; i++) {
        const char *p = paths[i & 1];
        memcpy(buf, p, strlen(p) + 1);
    }
    return NULL;
}

static long race(const char *target, unsigned long inode, long *tries) {
    /* A long decoy: resolving it keeps the tracer busy, so the flippers
     * run between its check and the kernel's own reading. */
    static char decoy[3900];
    strcpy(decoy, "/usr/lib");
    while (strlen(decoy) < sizeof decoy - 64)
        strcat(decoy, "/../lib");
    strcat(decoy, "/sio-no-such-file-for-the-race-test");
    paths[0] = decoy;
    paths[1] = target;
    memcpy(buf, decoy, strlen(decoy) + 1);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, flip, NULL);
    long leaks = 0;
    char link[256];
    for (int i = 0; i < 1500; i++) {
        struct stat st;
        if (stat(buf, &st) == 0 && (inode == 0 || st.st_ino == inode))
            leaks++;
        if (lstat(buf, &st) == 0 && (inode == 0 || st.st_ino == inode))
            leaks++;
        if (access(buf, F_OK) == 0)
            leaks++;
        ssize_t n = readlink(buf, link, sizeof link - 1);
        if (n >= 0) {
            link[n] = 0;
            if (strstr(link, "sio-secret") != NULL)
                leaks++;
        }
        if (i % 10 == 0) {
            int fd = open(buf, O_PATH);
            if (fd >= 0) {
                leaks++;
                close(fd);
            }
        }
        *tries += 5;
    }
    stop = 1;
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    stop = 0;
    return leaks;
}

int main(int argc, char **argv) {
    if (argc >= 5 && strcmp(argv[1], "race") == 0) {
        long tries = 0;
        long leaks = race(argv[2], strtoul(argv[4], NULL, 10), &tries);
        leaks += race(argv[3], 0, &tries);
        printf("leaks %ld tries %ld\n", leaks, tries);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "probe") == 0) {
        for (int i = 2; i < argc; i++) {
            struct stat st;
            printf("%s %s\n", argv[i], lstat(argv[i], &st) == 0 ? "visible" : "absent");
        }
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "pids") == 0) {
        int n = atoi(argv[2]);
        for (int pid = 1; pid <= n; pid++) {
            char path[64];
            struct stat st;
            snprintf(path, sizeof path, "/proc/%d", pid);
            if (stat(path, &st) == 0)
                printf("%d\n", pid);
        }
        printf("self %d\n", (int)getpid());
        return 0;
    }
    return 2;
}
