/* Killed by SIGSEGV (11): writes through a null pointer. */
int main(void)
{
    volatile int *volatile p = 0;
    *p = 1;
    return 0;
}
