/* The "checkers:oicompare" image of the workflow image registry.
 *
 * Called as sio3pack calls the default checker: `/chk IN EXPECTED RECEIVED`.
 * Compares EXPECTED and RECEIVED as sequences of whitespace-separated tokens
 * (oicompare's rule: runs of whitespace and trailing newlines are not
 * differences), ignores IN, and prints a sinol checker's answer on stdout:
 * "OK" or "WRONG", then a comment line, then the points ("100" or "0").
 * Exit status 0 for both answers; 2 when a file cannot be read.
 */
#include <ctype.h>
#include <stdio.h>

static int token(FILE *f, char *buf, int size, int *len) {
    int c;
    do c = getc(f); while (c != EOF && isspace(c));
    if (c == EOF) return 0;
    int n = 0;
    while (c != EOF && !isspace(c)) {
        if (n < size - 1) buf[n] = (char)c;
        n++;
        c = getc(f);
    }
    *len = n;
    buf[n < size - 1 ? n : size - 1] = 0;
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s IN EXPECTED RECEIVED\n", argv[0]); return 2; }
    FILE *e = fopen(argv[2], "rb"), *r = fopen(argv[3], "rb");
    if (!e || !r) { perror("oicompare"); return 2; }
    static char a[1 << 16], b[1 << 16];
    long line = 1;
    for (;;) {
        int la = 0, lb = 0;
        int ha = token(e, a, sizeof a, &la), hb = token(r, b, sizeof b, &lb);
        if (!ha && !hb) { printf("OK\n\n100\n"); return 0; }
        if (!ha || !hb || la != lb || __builtin_strcmp(a, b)) {
            if (!hb) printf("WRONG\ntoken %ld: expected %.40s, got end of file\n0\n", line, a);
            else if (!ha) printf("WRONG\ntoken %ld: expected end of file, got %.40s\n0\n", line, b);
            else printf("WRONG\ntoken %ld: expected %.40s, got %.40s\n0\n", line, a, b);
            return 0;
        }
        line++;
    }
}
