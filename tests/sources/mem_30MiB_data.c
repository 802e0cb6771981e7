/* 30 MiB in initialised data (the binary is 30 MiB big). */
#define SIZE (30 << 20)
static char buf[SIZE] = {1};
int main(void)
{
    volatile char *p = buf;
    long sum = 0;
    for (long i = 0; i < SIZE; i += 4096)
        sum += p[i];
    return sum == 1 ? 0 : 1;
}
