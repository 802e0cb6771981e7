/* kill(argv[1] or -1, SIGKILL) through the raw system call; "parent" kills
 * the supervisor (its parent). RV (kill). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long target = -1;
    if (argc > 1) target = strcmp(argv[1], "parent") ? atol(argv[1]) : (long)getppid();
    syscall(SYS_kill, target, SIGKILL);
    return 0;
}
