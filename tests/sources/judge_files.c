/* A submission that reads the file "dict.txt" of its run directory
 * (an extra execution file) and prints its first word and its arguments. */
#include <stdio.h>
int main(int argc, char **argv)
{
    char word[100];
    FILE *f = fopen("dict.txt", "r");
    if (!f || fscanf(f, "%99s", word) != 1)
        return 2;
    printf("%s", word);
    for (int i = 1; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    return 0;
}
