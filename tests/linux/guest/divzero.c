/* an integer division by zero: SIGFPE */
int main(int argc, char **argv) { volatile int z = argc - 1; (void)argv; return 10 / z; }
