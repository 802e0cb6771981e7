/* A solution of the interactive task of judge_interactor.c: reads a query
 * q, answers "2q i" where i is its argv[1].
 * -DWRONG answers 2q+1; -DQUIT exits (status 0) without reading;
 * -DDIE exits with status 3 without reading; -DEXIT1 exits with status 1
 * without reading; -DNOREAD never reads (sleeps);
 * -DFLOOD writes without end instead of answering. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    long q;
    int index = argc > 1 ? atoi(argv[1]) : -1;
#if defined(QUIT)
    return 0;
#elif defined(DIE)
    return 3;
#elif defined(EXIT1)
    return 1;
#elif defined(NOREAD)
    for (;;)
        pause();
#elif defined(FLOOD)
    for (;;)
        printf("1 ");
#endif
    if (scanf("%ld", &q) != 1)
        return 4;
#ifdef WRONG
    q = q * 2 + 1;
#else
    q = q * 2;
#endif
    printf("%ld %d\n", q, index);
    fflush(stdout);
    return 0;
}
