/* A "blocked program" for the enforcement latency runs: if nobody kills
 * it, it exits 3 after 2 s, so a missed kill shows as exit status 3. */
#include <unistd.h>
int main(void) { sleep(2); return 3; }
