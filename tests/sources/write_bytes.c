/* Writes N (first argument) bytes 'x' to stdout. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 0;
    char buf[4096];
    memset(buf, 'x', sizeof(buf));
    while (n > 0) {
        long k = n < (long)sizeof(buf) ? n : (long)sizeof(buf);
        long written = write(1, buf, k); /* a short write is retried */
        if (written < 0)
            return 1;
        n -= written;
    }
    return 0;
}
