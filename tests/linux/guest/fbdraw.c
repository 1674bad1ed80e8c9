/* A framebuffer program as Linux has them: asks /dev/fb0 for its mode, maps the pixels and
 * draws; reads /dev/input/event0 and marks each click where it landed; ends on Enter.
 * Prints what it learned, so the test can compare it with the script's mode. */
#include <fcntl.h>
#include <linux/fb.h>
#include <linux/input.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static uint32_t *px;
static unsigned W, H, LINE;

static void rect(int x, int y, int w, int h, uint32_t rgb) {
    for (int r = y; r < y + h; r++)
        for (int c = x; c < x + w; c++)
            if (r >= 0 && c >= 0 && (unsigned)r < H && (unsigned)c < W)
                px[r * (LINE / 4) + c] = rgb;
}

int main(void) {
    int fd = open("/dev/fb0", O_RDWR);
    if (fd < 0) { perror("open /dev/fb0"); return 1; }
    struct fb_var_screeninfo v;
    struct fb_fix_screeninfo f;
    if (ioctl(fd, FBIOGET_VSCREENINFO, &v) || ioctl(fd, FBIOGET_FSCREENINFO, &f)) { perror("ioctl"); return 1; }
    W = v.xres; H = v.yres; LINE = f.line_length;
    printf("fb0: %ux%u %ubpp line %u len %u red %u/%u green %u blue %u visual %u id %s\n", v.xres, v.yres,
           v.bits_per_pixel, f.line_length, f.smem_len, v.red.offset, v.red.length, v.green.offset,
           v.blue.offset, f.visual, f.id);
    px = mmap(NULL, f.smem_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (px == MAP_FAILED) { perror("mmap"); return 1; }
    rect(0, 0, W, H, 0x203080);           /* a blue page */
    rect(10, 10, 50, 30, 0xff0000);       /* a red box */
    /* a green line written with write(2) at row 60 */
    uint32_t row[4096];
    for (unsigned i = 0; i < W; i++) row[i] = 0x00ff00;
    if (lseek(fd, 60 * LINE, SEEK_SET) != (off_t)(60 * LINE)) { perror("lseek"); return 1; }
    if (write(fd, row, W * 4) != (ssize_t)(W * 4)) { perror("write"); return 1; }
    /* read back through read(2): the red box's first pixel */
    uint32_t back = 0;
    lseek(fd, 10 * LINE + 40, SEEK_SET);
    if (read(fd, &back, 4) != 4) { perror("read"); return 1; }
    printf("read back %06x\n", back);
    fflush(stdout);

    int ev = open("/dev/input/event0", O_RDONLY);
    if (ev < 0) { perror("open event0"); return 1; }
    char name[64] = "";
    ioctl(ev, EVIOCGNAME(sizeof name), name);
    struct input_absinfo ax;
    ioctl(ev, EVIOCGABS(ABS_X), &ax);
    printf("input: %s, x 0..%d\n", name, ax.maximum);
    fflush(stdout);
    int x = 0, y = 0, keys = 0;
    for (;;) {
        struct input_event e[16];
        ssize_t n = read(ev, e, sizeof e);
        if (n < (ssize_t)sizeof e[0]) { perror("read event0"); return 1; }
        for (int i = 0; i < n / (int)sizeof e[0]; i++) {
            if (e[i].type == EV_ABS && e[i].code == ABS_X) x = e[i].value;
            if (e[i].type == EV_ABS && e[i].code == ABS_Y) y = e[i].value;
            if (e[i].type == EV_KEY && e[i].code == BTN_LEFT && e[i].value == 1) {
                rect(x - 3, y - 3, 7, 7, 0xffff00);
                printf("click at %d %d\n", x, y);
                fflush(stdout);
            }
            if (e[i].type == EV_KEY && e[i].code < BTN_MISC && e[i].value == 1) keys++;
            if (e[i].type == EV_KEY && e[i].code == KEY_ENTER && e[i].value == 1) {
                printf("enter after %d keys\n", keys);
                fflush(stdout);
                usleep(100000); /* the last damage reaches the screen */
                return 0;
            }
        }
    }
}
