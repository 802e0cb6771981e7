/* Spins forever: TLE. */
int main(void) { for (volatile unsigned long x = 0;; x++) ; }
