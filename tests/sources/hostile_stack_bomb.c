/* Unbounded recursion with 64 KiB frames: MLE (the stack is unlimited, the
 * address space is not). */
#include <string.h>
static int down(int n) {
    volatile char frame[65536];
    memset((char *)frame, n, sizeof frame);
    return down(n + 1) + frame[n % sizeof frame];
}
int main(void) { return down(0); }
