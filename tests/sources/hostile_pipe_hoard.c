/* Parks memory in the kernel: makes as many pipes as it can, grows each to
 * the largest buffer allowed and fills it, then prints "pipes N bytes B"
 * (B = bytes held in pipe buffers) and exits 0. Under the supervisor the
 * descriptor limit stops it after a few pipes. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    static char block[65536];
    memset(block, 'x', sizeof block);
    long pipes = 0, bytes = 0;
    for (int i = 0; i < 20000; i++) {
        int fds[2];
        if (pipe2(fds, O_NONBLOCK) != 0)
            break;
        pipes++;
        fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
        for (;;) {
            ssize_t n = write(fds[1], block, sizeof block);
            if (n <= 0)
                break;
            bytes += n;
        }
    }
    printf("pipes %ld bytes %ld\n", pipes, bytes);
    return 0;
}
