/* An interactor: ./soc n r_0 w_0 ... r_{n-1} w_{n-1}.
 * Its stdin (the test) holds "x payload mode". It sends process i the
 * query x+i followed by payload bytes of padding, and expects "2(x+i) i".
 * mode 0: normal; 1: crashes (abort) at once; 2: sleeps without reading;
 * 3: answers a correct run with the partial score 1/3;
 * 4: as oioioi's test interactors, exits at once with status 128 + SIGPIPE
 *    (printing nothing) when a process does not answer; it ignores SIGPIPE,
 *    so that it always ends this way, never killed by the signal itself.
 * When a process closed its output without answering, it writes to it
 * again, which kills it with SIGPIPE (the process is gone). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long x, payload;
    int mode;
    int n = atoi(argv[1]);
    if (argc != 2 + 2 * n || scanf("%ld %ld %d", &x, &payload, &mode) != 3) {
        fprintf(stderr, "bad arguments or input\n");
        return 5;
    }
    if (mode == 1)
        abort();
    if (mode == 2)
        for (;;)
            pause();
    if (mode == 4)
        signal(SIGPIPE, SIG_IGN);
    FILE *in[64], *out[64];
    for (int i = 0; i < n; i++) {
        in[i] = fdopen(atoi(argv[2 + 2 * i]), "r");
        out[i] = fdopen(atoi(argv[3 + 2 * i]), "w");
        if (!in[i] || !out[i])
            return 6;
    }
    for (int i = 0; i < n; i++) {
        fprintf(out[i], "%ld\n", x + i);
        for (long k = 0; k < payload; k++)
            fputc(' ', out[i]);
        fflush(out[i]);
    }
    int wrong = -1;
    for (int i = 0; i < n; i++) {
        long answer;
        int index;
        if (fscanf(in[i], "%ld %d", &answer, &index) != 2) {
            if (mode == 4)
                return 128 + SIGPIPE;
            /* SIGPIPE once process i is gone. A process that just exited
             * may release its output pipe before its input pipe: a write
             * can still succeed for a moment, so try for a while. */
            for (int tries = 0; tries < 200; tries++) {
                fputs("are you there?\n", out[i]);
                fflush(out[i]);
                usleep(5000);
            }
            printf("WRONG\nno answer from process %d\n", i);
            return 0;
        }
        if (wrong < 0 && (answer != 2 * (x + i) || index != i))
            wrong = i;
    }
    if (wrong >= 0)
        printf("WRONG\nwrong answer from process %d\n", wrong);
    else if (mode == 3)
        printf("OK\npartial\n1/3\n");
    else
        printf("OK\n");
    return 0;
}
