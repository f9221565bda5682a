/*
 * fuzz_common.h - helpers shared by the libFuzzer harnesses in tests/fuzz/:
 * a private scratch folder per process (in /dev/shm when it exists, so
 * writing the input to a file costs no disk I/O), writing bytes to a file
 * there, and a check that aborts with a message, so libFuzzer records a
 * broken promise of the library as a crash.
 *
 * Harnesses whose library entry point takes a path write each input to a
 * file in the scratch folder and pass its name; the folder is removed at
 * exit. Everything is single-threaded (the fuzz build has no OpenMP).
 */
#ifndef HCR_FUZZ_COMMON_H
#define HCR_FUZZ_COMMON_H

#include "hcr.h"
#include "hcr_data.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A broken invariant: print it and abort (libFuzzer saves the input). */
#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__,      \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, "\n");                                             \
            abort();                                                           \
        }                                                                      \
    } while (0)

static char fuzz_dir_path[256];

static inline void fuzz_dir_remove(void)
{
    DIR *d = opendir(fuzz_dir_path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", fuzz_dir_path, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(fuzz_dir_path);
}

/* The scratch folder of this process, created on first use. */
static inline const char *fuzz_dir(void)
{
    if (fuzz_dir_path[0]) return fuzz_dir_path;
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    const char *env = getenv("HCR_FUZZ_TMP");
    if (env && *env) base = env;
    snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/hcr-fuzz-%ld", base, (long)getpid());
    if (mkdir(fuzz_dir_path, 0700) != 0 && !(stat(fuzz_dir_path, &st) == 0 && S_ISDIR(st.st_mode))) {
        perror(fuzz_dir_path);
        abort();
    }
    atexit(fuzz_dir_remove);
    return fuzz_dir_path;
}

/* "<scratch>/<name>" into a static buffer (one per call site's buffer). */
static inline void fuzz_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", fuzz_dir(), name);
}

/* Write n bytes to path, replacing it; aborts on failure (not the library's
 * fault, but nothing useful can be fuzzed without it). */
static inline void fuzz_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

#endif
