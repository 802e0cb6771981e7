/* Runs a shell: RV (execve). */
#include <unistd.h>
int main(void) {
    execl("/bin/sh", "sh", "-c", "echo pwned > pwned.txt", (char *)NULL);
    return 1;
}
