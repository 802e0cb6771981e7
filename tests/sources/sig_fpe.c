/* Killed by SIGFPE (8): an integer division by zero at run time (the
 * divisor comes from argc, so the compiler cannot fold it). */
int main(int argc, char **argv)
{
    (void)argv;
    volatile int zero = argc - 1;
    volatile int x = 42 / zero;
    return x;
}
