/* An input verifier: accepts an input of two numbers 0 <= a, b <= 1000 on
 * one line, and checks that its first argument (the test's file name) ends
 * with ".in". Prints "OK <name>" or "WRONG ..." and exits 0 or 1. */
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    long a, b;
    char rest;
    if (argc != 2 || strlen(argv[1]) < 3 || strcmp(argv[1] + strlen(argv[1]) - 3, ".in")) {
        printf("WRONG bad file name argument\n");
        return 1;
    }
    if (scanf("%ld %ld%c", &a, &b, &rest) != 3 || rest != '\n' || getchar() != EOF) {
        printf("WRONG bad format in %s\n", argv[1]);
        return 1;
    }
    if (a < 0 || a > 1000 || b < 0 || b > 1000) {
        printf("WRONG out of range in %s\n", argv[1]);
        return 1;
    }
    printf("OK %s\n", argv[1]);
    return 0;
}
