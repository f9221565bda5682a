/*
 * atomic.c - output files written atomically (see atomic.h): the model,
 * the training checkpoint and the history CSV all go through here.
 */
#include "core/atomic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINKS 40 /* as the kernel's ELOOP limit */

/* The folder part of a path ("." when there is none), malloc'ed. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return hcr__strdup(".");
    if (slash == path) return hcr__strdup("/");
    char *d = malloc((size_t)(slash - path) + 1);
    if (d) {
        memcpy(d, path, (size_t)(slash - path));
        d[slash - path] = '\0';
    }
    return d;
}

/* The link's target, relative to the link's folder when it is relative. */
static char *follow_link(const char *path)
{
    char buf[PATH_MAX];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0) return NULL;
    buf[n] = '\0';
    if (buf[0] == '/') return hcr__strdup(buf);
    char *dir = dir_of(path);
    if (!dir) return NULL;
    size_t len = strlen(dir) + 1 + (size_t)n + 1;
    char *out = malloc(len);
    if (out) snprintf(out, len, "%s/%s", dir, buf);
    free(dir);
    return out;
}

static const char *kind_of(mode_t mode)
{
    if (S_ISREG(mode)) return "a file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

hcr_status hcr_output_resolve(const char *path, char **resolved)
{
    *resolved = NULL;
    if (!path || !*path) return hcr__fail(HCR_EINVAL, "no output path");
    if (path[strlen(path) - 1] == '/') return hcr__fail(HCR_EINVAL, "%s: is a folder name, not a file name", path);
    char *p = hcr__strdup(path);
    if (!p) return hcr__fail(HCR_ENOMEM, "out of memory");
    struct stat sb;
    int e = 0;
    for (int links = 0;; links++) {
        if (lstat(p, &sb) != 0) {
            if ((e = errno) != ENOENT) break;
            /* Nothing there yet: its folder must exist and be a folder. */
            char *dir = dir_of(p);
            struct stat db;
            int e = !dir ? ENOMEM : stat(dir, &db) != 0 ? errno : !S_ISDIR(db.st_mode) ? ENOTDIR : 0;
            hcr_status s = HCR_OK;
            if (e == ENOENT)
                s = hcr__fail(HCR_EIO, "%s: the folder %s does not exist", path, dir);
            else if (e)
                s = hcr__fail(HCR_EIO, "%s: folder %s: %s", path, dir ? dir : "?", strerror(e));
            free(dir);
            if (s) {
                free(p);
                return s;
            }
            *resolved = p;
            return HCR_OK;
        }
        if (!S_ISLNK(sb.st_mode)) break;
        if (links == MAX_LINKS) {
            e = ELOOP;
            break;
        }
        char *next = follow_link(p);
        free(p);
        if (!(p = next)) return hcr__fail(HCR_EIO, "%s: %s", path, strerror(errno ? errno : ENOMEM));
    }
    if (e == 0 && S_ISREG(sb.st_mode)) {
        *resolved = p;
        return HCR_OK;
    }
    hcr_status s = e ? hcr__fail(HCR_EIO, "%s: %s", path, strerror(e))
                     : hcr__fail(HCR_EIO, "%s: is %s; refusing to replace it with a file", path,
                                kind_of(sb.st_mode));
    free(p);
    return s;
}

/* A new temporary file beside `target`, named "<target>.tmp-<pid>-XXXXXX"
 * so that one left by a killed process can be told from one in use; fd or
 * -1 with errno set. */
static int make_temp(const char *target, char **tmp)
{
    size_t n = strlen(target) + 48;
    *tmp = malloc(n);
    if (!*tmp) {
        errno = ENOMEM;
        return -1;
    }
    snprintf(*tmp, n, "%s.tmp-%ld-XXXXXX", target, (long)getpid());
    int fd = mkstemp(*tmp);
    if (fd < 0) {
        int e = errno;
        free(*tmp);
        *tmp = NULL;
        errno = e;
    }
    return fd;
}

hcr_status hcr_output_check(const char *path)
{
    char *target;
    hcr_status s = hcr_output_resolve(path, &target);
    if (s) return s;
    char *tmp;
    int fd = make_temp(target, &tmp);
    if (fd < 0) {
        s = hcr__fail(HCR_EIO, "%s: cannot write there: %s", path, strerror(errno));
    } else {
        close(fd);
        unlink(tmp);
        free(tmp);
    }
    free(target);
    return s;
}

hcr_status hcr_output_check_dir(const char *dir)
{
    if (!dir || !*dir) return hcr__fail(HCR_EINVAL, "no folder name");
    char *p = hcr__strdup(dir);
    if (!p) return hcr__fail(HCR_ENOMEM, "out of memory");
    /* The deepest part of the path that exists must be a writable folder. */
    for (;;) {
        struct stat sb;
        if (stat(p, &sb) == 0) {
            hcr_status s = HCR_OK;
            if (!S_ISDIR(sb.st_mode))
                s = hcr__fail(HCR_EIO, "%s: %s is %s, not a folder", dir, p, kind_of(sb.st_mode));
            else if (access(p, W_OK | X_OK) != 0)
                s = hcr__fail(HCR_EIO, "%s: cannot write in %s: %s", dir, p, strerror(errno));
            free(p);
            return s;
        }
        if (errno != ENOENT) {
            hcr_status s = hcr__fail(HCR_EIO, "%s: %s", dir, strerror(errno));
            free(p);
            return s;
        }
        char *up = dir_of(p);
        free(p);
        if (!up) return hcr__fail(HCR_ENOMEM, "out of memory");
        p = up;
    }
}

/* Remove the temporary files of `target` left by processes that no
 * longer exist (killed while writing it). */
static void sweep_stale(const char *target)
{
    char *dir = dir_of(target);
    const char *slash = strrchr(target, '/');
    const char *base = slash ? slash + 1 : target;
    size_t blen = strlen(base);
    DIR *d = dir ? opendir(dir) : NULL;
    for (struct dirent *e; d && (e = readdir(d));) {
        const char *name = e->d_name, *p = name + blen;
        if (strncmp(name, base, blen) != 0 || strncmp(p, ".tmp-", 5) != 0) continue;
        char *end;
        long pid = strtol(p + 5, &end, 10);
        if (pid <= 0 || *end != '-' || strlen(end) != 7 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to ask */
        size_t len = strlen(dir) + strlen(name) + 2;
        char *path = malloc(len);
        if (path) {
            snprintf(path, len, "%s/%s", dir, name);
            unlink(path);
            free(path);
        }
    }
    if (d) closedir(d);
    free(dir);
}

hcr_status hcr_atomic_open(hcr_atomic *a, const char *path)
{
    memset(a, 0, sizeof *a);
    a->path = path;
    hcr_status s = hcr_output_resolve(path, &a->target);
    if (s) return s;
    sweep_stale(a->target);
    int fd = make_temp(a->target, &a->tmp);
    if (fd < 0) {
        s = hcr__fail(HCR_EIO, "%s: %s", path, strerror(errno));
        free(a->target);
        a->target = NULL;
        return s;
    }
    /* mkstemp makes the file 0600: give it the mode of the file it
     * replaces, or the usual 0644 (less the umask's bits) for a new one. */
    struct stat old;
    mode_t mask = umask(0);
    umask(mask);
    mode_t mode = stat(a->target, &old) == 0 ? (old.st_mode & 07777) : (0666 & ~mask);
    if (fchmod(fd, mode) != 0 || !(a->f = fdopen(fd, "wb"))) {
        s = hcr__fail(HCR_EIO, "%s: %s", path, strerror(errno));
        close(fd);
        hcr_atomic_abort(a);
    }
    return s;
}

void hcr_atomic_abort(hcr_atomic *a)
{
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    free(a->target);
    memset(a, 0, sizeof *a);
}

/* Make a rename durable. Best effort: some file systems refuse to fsync a
 * folder, and the file is complete either way. */
static void sync_dir_of(const char *path)
{
    char *dir = dir_of(path);
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

hcr_status hcr_atomic_commit(hcr_atomic *a)
{
    int err = a->err ? a->err : ferror(a->f) ? EIO : 0;
    /* stdio need not set errno on a failed flush: clear it, so a stale
     * value is never reported; EIO stands in for none. */
    errno = 0;
    if (!err && fflush(a->f) != 0) err = errno ? errno : EIO;
    if (!err && fsync(fileno(a->f)) != 0) err = errno;
    if (fclose(a->f) != 0 && !err) err = errno ? errno : EIO;
    a->f = NULL;
    if (!err && rename(a->tmp, a->target) != 0) err = errno;
    if (err) {
        hcr_status s = hcr__fail(HCR_EIO, "%s: %s", a->path, strerror(err));
        hcr_atomic_abort(a);
        return s;
    }
    sync_dir_of(a->target);
    free(a->tmp);
    free(a->target);
    memset(a, 0, sizeof *a);
    return HCR_OK;
}
