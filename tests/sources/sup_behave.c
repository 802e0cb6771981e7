/* Ordinary behaviours: "ok" prints hello; "exit N" returns N; "segv",
 * "abort" crash; "cat" copies stdin to stdout; "stderr" writes to both
 * streams; "stat PATH" queries a path; "uid" prints its uid and gid. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "ok";
    if (!strcmp(what, "exit")) return atoi(argv[2]);
    if (!strcmp(what, "segv")) { raise(SIGSEGV); }
    if (!strcmp(what, "abort")) abort();
    if (!strcmp(what, "cat")) {
        int c;
        while ((c = getchar()) != EOF) putchar(c);
        return 0;
    }
    if (!strcmp(what, "stderr")) { fputs("to stderr\n", stderr); puts("to stdout"); return 0; }
    if (!strcmp(what, "stat")) {
        struct stat st;
        printf("%d %d\n", stat(argv[2], &st), access(argv[2], R_OK));
        return 0;
    }
    if (!strcmp(what, "uid")) { printf("%u %u\n", getuid(), getgid()); return 0; }
    puts("hello");
    return 0;
}
