/* 30 MiB on the stack, all touched. */
#include <string.h>
#define SIZE (30 << 20)
static int use(volatile char *p)
{
    long sum = 0;
    for (long i = 0; i < SIZE; i += 4096)
        sum += p[i];
    return sum == SIZE / 4096 ? 0 : 1;
}
int main(void)
{
    char buf[SIZE];
    memset(buf, 1, SIZE);
    return use(buf);
}
