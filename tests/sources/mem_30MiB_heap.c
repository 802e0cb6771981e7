/* 30 MiB from malloc, all touched so that it cannot be optimised away. */
#include <stdlib.h>
#include <string.h>
#define SIZE (30 << 20)
int main(void)
{
    char *volatile p = malloc(SIZE);
    if (!p)
        return 3;
    memset(p, 1, SIZE);
    return p[SIZE - 1] == 1 ? 0 : 1;
}
