/* Hostile: a 250 MB initialised array, so the object file and the binary
   would be 250 MB. The compiler must be stopped by the file size limit (or
   the result rejected by compilation_result_size_limit). */
char huge[250 * 1000 * 1000] = {1};
int main(void) { return huge[12345]; }
