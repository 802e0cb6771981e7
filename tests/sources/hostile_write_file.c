/* Creates/overwrites argv[1]; exit status 1 when the open fails. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int fd = open(argc > 1 ? argv[1] : "/tmp/hostile-was-here", O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) { puts("open failed"); return 1; }
    write(fd, "pwned\n", 6);
    return 0;
}
