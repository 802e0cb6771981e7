/* Starts argv[1] threads (besides the main one), all alive at once, then
 * joins them and prints "joined N". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
static pthread_barrier_t barrier;
static void *work(void *arg) { pthread_barrier_wait(&barrier); return arg; }
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2;
    pthread_t t[256];
    pthread_barrier_init(&barrier, NULL, n + 1);
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, work, NULL)) { puts("create failed"); return 1; }
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    printf("joined %d\n", n);
    return 0;
}
