/* The working directory a user expects: where the program starts, a relative file read, the
   directory's names listed (sorted), and a file written there and read back. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == NULL) {
        perror("getcwd");
        return 1;
    }
    printf("cwd=%s\n", cwd);
    FILE *f = fopen(argc > 1 ? argv[1] : "data.txt", "r");
    if (f == NULL) {
        perror("fopen");
        return 2;
    }
    char line[256];
    while (fgets(line, sizeof line, f) != NULL)
        printf("read: %s", line);
    fclose(f);
    DIR *d = opendir(".");
    char *names[256];
    int n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL && n < 256)
        names[n++] = strdup(e->d_name);
    qsort(names, n, sizeof names[0], cmp);
    for (int i = 0; i < n; i++)
        printf("entry: %s\n", names[i]);
    f = fopen("written.txt", "w");
    if (f == NULL) {
        perror("fopen written.txt");
        return 3;
    }
    fputs("written by the program\n", f);
    fclose(f);
    f = fopen("written.txt", "r");
    if (fgets(line, sizeof line, f) != NULL)
        printf("back: %s", line);
    fclose(f);
    return 0;
}
