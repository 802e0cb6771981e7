/* Parks memory in the kernel: epoll instances, each watching every
 * descriptor it can get, until the kernel refuses; prints "watches N" and
 * exits 0. Under the supervisor the descriptor limit keeps N small. */
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
int main(void) {
    int targets[4096], ntargets = 0, epolls[4096], nepolls = 0;
    long watches = 0;
    /* half the descriptors to watch, half epoll instances */
    for (int i = 0; i < 2048; i++) {
        int fd = eventfd(0, 0);
        if (fd < 0)
            break;
        targets[ntargets++] = fd;
        int ep = epoll_create1(0);
        if (ep < 0)
            break;
        epolls[nepolls++] = ep;
    }
    for (int e = 0; e < nepolls; e++)
        for (int t = 0; t < ntargets; t++) {
            struct epoll_event ev = {.events = EPOLLIN, .data.fd = targets[t]};
            if (epoll_ctl(epolls[e], EPOLL_CTL_ADD, targets[t], &ev) == 0)
                watches++;
        }
    printf("watches %ld\n", watches);
    return 0;
}
