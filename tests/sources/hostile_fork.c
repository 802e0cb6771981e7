/* One plain fork, the child lingering: RV (clone). */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    pid_t pid = fork();
    if (pid == 0) { sleep(100); return 0; }
    if (pid < 0) { puts("fork failed"); return 1; }
    waitpid(pid, NULL, 0);
    return 0;
}
