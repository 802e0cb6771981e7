/* Reads /dev/random: RV (opening files). */
#include <stdio.h>
int main(void) {
    FILE *f = fopen("/dev/random", "r");
    if (!f) return 1;
    printf("%d\n", fgetc(f));
    return 0;
}
