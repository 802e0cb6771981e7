/* Leaves a child running after it exits (double fork + setsid): RV, and
 * no process may survive. */
#include <stdlib.h>
#include <unistd.h>
int main(void) {
    if (fork() == 0) {
        setsid();
        if (fork() == 0) { for (;;) pause(); }
        _exit(0);
    }
    return 0;
}
