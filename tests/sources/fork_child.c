/* Starts a child that keeps running (sleeping) and prints its pid; the
 * parent exits at once. */
#include <stdio.h>
#include <unistd.h>
int main(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        for (;;)
            pause();
    }
    printf("%d\n", (int)pid);
    return 0;
}
