/* Tries to rewrite its output, a file it was given open for appending
 * (stdout): writes "first\n", then tries to take O_APPEND off with
 * fcntl(F_SETFL) and write "XX" at offset 0, to cut the file with
 * ftruncate(), and to write "YY" at offset 0 with pwritev2(RWF_NOAPPEND).
 * Reports on stderr: "setfl <rc> append <0|1> ftruncate <rc> pwritev2 <rc>"
 * (rc: 0, or the errno). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RWF_NOAPPEND
#define RWF_NOAPPEND 0x20
#endif

static int rc(long r) { return r < 0 ? errno : 0; }

int main(void) {
    write(1, "first\n", 6);
    int flags = fcntl(1, F_GETFL);
    int setfl = rc(fcntl(1, F_SETFL, flags & ~O_APPEND));
    int append = (fcntl(1, F_GETFL) & O_APPEND) != 0;
    lseek(1, 0, SEEK_SET);
    write(1, "XX", 2);
    int cut = rc(ftruncate(1, 0));
    struct iovec iov = {"YY", 2};
    int pw = rc(pwritev2(1, &iov, 1, 0, RWF_NOAPPEND));
    fprintf(stderr, "setfl %d append %d ftruncate %d pwritev2 %d\n", setfl, append, cut, pw);
    return 0;
}
