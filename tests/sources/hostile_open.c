/* Opens argv[1] for reading (default /etc/passwd) and prints its first line;
 * exit status 1 when the open fails. RV unless local opens are allowed. */
#include <stdio.h>
int main(int argc, char **argv) {
    FILE *f = fopen(argc > 1 ? argv[1] : "/etc/passwd", "r");
    char line[256];
    if (!f) { puts("open failed"); return 1; }
    if (fgets(line, sizeof line, f)) fputs(line, stdout);
    return 0;
}
