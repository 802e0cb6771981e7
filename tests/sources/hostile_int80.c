/* A 32-bit system call (getpid = 20 in the i386 table) from a 64-bit
 * program through `int 0x80`: a filter that only looks at numbers would take
 * it for x86-64 call 20 (writev). RV. */
#include <stdio.h>
int main(void) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
    printf("i386 getpid returned %ld\n", ret);
    return 0;
}
