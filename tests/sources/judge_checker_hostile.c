/* A custom checker (./chk in out hint) that does what the hint says, the C
 * twin of python_checker.py's hostile cases:
 *   "READ"  opens /etc/passwd: OK with its first line as the comment;
 *   "WRITE" creates the file written.txt: OK;
 *   "FORK"  starts a process (/bin/true): OK;
 * a refused call: WRONG, "<call> failed: <errno name>", exit status 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int refused(const char *call)
{
    printf("WRONG\n%s failed: %s\n", call, strerrorname_np(errno));
    return 1;
}

int main(int argc, char **argv)
{
    char hint[64] = "", line[256] = "";
    FILE *f = argc == 4 ? fopen(argv[3], "r") : NULL;
    if (!f)
        return 3;
    if (!fgets(hint, sizeof hint, f))
        return 3;
    fclose(f);
    if (!strcmp(hint, "READ\n")) {
        f = fopen("/etc/passwd", "r");
        if (!f)
            return refused("open");
        if (fgets(line, sizeof line, f))
            line[strcspn(line, "\n")] = 0;
        printf("OK\n%s\n", line);
    } else if (!strcmp(hint, "WRITE\n")) {
        f = fopen("written.txt", "w");
        if (!f)
            return refused("open");
        fputs("pwned\n", f);
        fclose(f);
        puts("OK");
    } else if (!strcmp(hint, "FORK\n")) {
        pid_t pid = fork();
        if (pid < 0)
            return refused("fork");
        if (pid == 0) {
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        waitpid(pid, NULL, 0);
        puts("OK");
    } else {
        return 3;
    }
    return 0;
}
