/* 30 MiB in bss, all touched. */
#include <string.h>
#define SIZE (30 << 20)
static char buf[SIZE];
int main(void)
{
    memset(buf, 1, SIZE);
    return buf[SIZE / 2] == 1 ? 0 : 1;
}
