/* Allocates argv[1] MiB and touches every page, then exits 0. */
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 0;
    if (mib) {
        char *p = malloc(mib << 20);
        if (!p) return 3;
        memset(p, 7, mib << 20);
        return p[mib] != 7;
    }
    return 0;
}
