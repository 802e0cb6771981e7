/* An input generator: writes abc1.in ... abc<N>.in (N = 100, or the first
 * argument) and a few junk files, prints a line per file.
 * -DFAIL writes the files but exits with status 1. */
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    char name[64];
    for (int i = 1; i <= n; i++) {
        snprintf(name, sizeof(name), "abc%d%s.in", i, i % 2 ? "a" : "");
        FILE *f = fopen(name, "w");
        if (!f)
            return 2;
        fprintf(f, "%d %d\n", i, i * 2);
        fclose(f);
        printf("generated %s\n", name);
    }
    FILE *junk = fopen("abc.tmp", "w");
    fputs("junk\n", junk);
    fclose(junk);
    junk = fopen("xabc1.in", "w");
    fputs("junk\n", junk);
    fclose(junk);
    fprintf(stderr, "done\n");
#ifdef FAIL
    return 1;
#endif
    return 0;
}
