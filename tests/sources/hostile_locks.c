/* Tries to signal another run through locks on its input (stdin, a file
 * concurrent runs share): every kind of record lock (fcntl F_SETLK,
 * F_SETLKW, F_GETLK, F_OFD_*) and flock(). Prints one line per attempt:
 * "<name> <0 on success, else errno>", then holds whatever it got for
 * argv[1] ms (default 0) so that a concurrent run can look. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static void report(const char *name, int rc) { printf("%s %d\n", name, rc == -1 ? errno : 0); }

int main(int argc, char **argv) {
    struct flock fl;
    int cmds[] = {F_SETLK, F_SETLKW, F_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_OFD_GETLK};
    const char *names[] = {"F_SETLK", "F_SETLKW", "F_GETLK", "F_OFD_SETLK", "F_OFD_SETLKW",
                           "F_OFD_GETLK"};
    for (int i = 0; i < 6; i++) {
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_RDLCK;
        fl.l_whence = SEEK_SET;
        fl.l_len = 1;
        report(names[i], fcntl(0, cmds[i], &fl));
    }
    report("flock", flock(0, LOCK_SH | LOCK_NB));
    fflush(stdout);
    int ms = argc > 1 ? atoi(argv[1]) : 0;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return 0;
}
