/* Maps and touches 16 MiB anonymous chunks forever ("huge": one 1 GiB
 * mapping instead): MLE. */
#include <string.h>
#include <sys/mman.h>
int main(int argc, char **argv) {
    size_t size = (argc > 1) ? (size_t)1 << 30 : (size_t)16 << 20;
    for (;;) {
        char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 3;
        memset(p, 1, size);
    }
}
