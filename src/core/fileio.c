/*
 * fileio.c - opening a file the user named, for reading, safely: only a
 * regular file is read. A FIFO would block the program until someone
 * writes to it, a device such as /dev/zero or /dev/urandom never ends (and
 * a 256 MiB cap is a long wait for nothing), and opening some devices
 * (a tape, a terminal) does something by itself. So the path is stat()ed
 * first and anything but a regular file is refused without opening it; it
 * is then opened with O_NONBLOCK (a FIFO swapped in meanwhile cannot block
 * the open), checked again with fstat() (the file opened is the one
 * checked), and O_NONBLOCK is cleared for ordinary blocking reads.
 */
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *hcr_file_kind(unsigned mode)
{
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

static hcr_status refuse(const char *path, unsigned mode)
{
    return hcr__fail(HCR_EIO, "%s: is %s, not a regular file", path, hcr_file_kind(mode));
}

hcr_status hcr__open_regular(const char *path, int *fd_out, struct stat *st_out)
{
    *fd_out = -1;
    struct stat st;
    if (stat(path, &st) != 0) return hcr__fail(HCR_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return refuse(path, st.st_mode);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) return hcr__fail(HCR_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return hcr__fail(HCR_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return refuse(path, st.st_mode);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return hcr__fail(HCR_EIO, "%s: cannot open: %s", path, strerror(e));
    }
    if (st_out) *st_out = st;
    *fd_out = fd;
    return HCR_OK;
}

hcr_status hcr__fopen_regular(const char *path, FILE **f_out)
{
    *f_out = NULL;
    int fd;
    hcr_status s = hcr__open_regular(path, &fd, NULL);
    if (s != HCR_OK) return s;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        return hcr__fail(HCR_ENOMEM, "%s: cannot open: %s", path, strerror(e));
    }
    *f_out = f;
    return HCR_OK;
}
