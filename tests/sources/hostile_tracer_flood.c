/* Tries to starve the supervisor's tracer: argv[1] threads (default 2), the
 * main one included, loop on newfstatat() of a ~4000-byte path full of
 * "x/../" (a call the tracer stops and resolves), so that a stop is always
 * pending. Never ends by itself: the wall-clock limit must end it. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char path[4000];

static void *flood(void *arg) {
    struct stat st;
    for (;;)
        fstatat(AT_FDCWD, path, &st, 0);
    return arg;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2;
    strcpy(path, "/usr/lib");
    while (strlen(path) + 6 < sizeof path)
        strcat(path, "/x/..");
    pthread_t t;
    for (int i = 1; i < n; i++)
        pthread_create(&t, NULL, flood, NULL);
    flood(NULL);
    return 0;
}
