/* abort(): SIGABRT through tgkill, default action */
#include <stdlib.h>
int main(void) { abort(); }
