/* calls on paths whose last component is no name ("/", ".", ".."): what each fails with.
   argv[1]: a directory to work in */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *name(int e) {
    switch (e) {
    case 0: return "ok";
    case EEXIST: return "EEXIST";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case ENOTEMPTY: return "ENOTEMPTY";
    case EISDIR: return "EISDIR";
    case ENOENT: return "ENOENT";
    case ENOTDIR: return "ENOTDIR";
    default: return strerror(e);
    }
}

#define TRY(what, call) do { errno = 0; (void)(call); printf("%-22s %s\n", what, name(errno)); } while (0)

int main(int argc, char **argv) {
    if (argc < 2 || chdir(argv[1]) != 0)
        return 2;
    mkdir("d", 0755);
    TRY("mkdir /", mkdir("/", 0755));
    TRY("mkdir .", mkdir(".", 0755));
    TRY("mkdir ..", mkdir("..", 0755));
    TRY("mkdir ./", mkdir("./", 0755));
    TRY("mkdir d/..", mkdir("d/..", 0755));
    TRY("mkdir d/", mkdir("d/", 0755));
    TRY("mkdir nothere/..", mkdir("nothere/..", 0755));
    TRY("mkdir nothere/.", mkdir("nothere/.", 0755));
    TRY("rmdir /", rmdir("/"));
    TRY("rmdir .", rmdir("."));
    TRY("rmdir ..", rmdir(".."));
    TRY("rmdir d/.", rmdir("d/."));
    TRY("unlink .", unlink("."));
    TRY("unlink /", unlink("/"));
    TRY("rename . x", rename(".", "x"));
    TRY("rename d ..", rename("d", ".."));
    TRY("symlink x .", symlink("x", "."));
    TRY("link d/.. y", link("d/..", "y"));
    TRY("mkdir d/x", mkdir("d/x", 0755));
    TRY("rmdir d/x/", rmdir("d/x/"));
    TRY("rmdir d", rmdir("d"));
    return 0;
}
