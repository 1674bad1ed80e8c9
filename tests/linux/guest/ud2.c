/* an invalid instruction: killed by SIGILL */
int main(void) { __builtin_trap(); }
