/* A submission: prints the sum of the two numbers on its input.
 * -DWRONG adds one; -DNON_UTF8 prints invalid UTF-8 before the sum;
 * -DSPACES prints whitespace after the sum. */
#include <stdio.h>
int main(void)
{
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2)
        return 1;
#ifdef WRONG
    a += 1;
#endif
#ifdef NON_UTF8
    fputs("\xff\xfe\x80 ", stdout);
#endif
#ifdef SPACES
    printf("%lld \t \n", a + b);
#else
    printf("%lld\n", a + b);
#endif
    return 0;
}
