/* The program the exec storm starts: does nothing (built static, so an
 * exec costs the kernel's work and not the dynamic loader's). */
int main(void) { return 0; }
