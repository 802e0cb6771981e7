/* Copies stdin to stdout, then writes "err" to stderr and each argument
 * on its own line to stdout. */
#include <stdio.h>
int main(int argc, char **argv)
{
    int c;
    while ((c = getchar()) != EOF)
        putchar(c);
    fflush(stdout);
    fputs("err\n", stderr);
    for (int i = 1; i < argc; i++)
        printf("%s\n", argv[i]);
    return 0;
}
