/*
 * internal.h - helpers shared by the library's files and not part of the
 * public API: error reporting, checked size arithmetic, the random number
 * generator, threads.
 */
#ifndef HCR_INTERNAL_H
#define HCR_INTERNAL_H

#include "hcr.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What libhcr lends its sibling libraries (libhcr-data, libhcr-report):
 * exported, but named hcr__* and declared only here, so no program takes
 * them for the public API. Everything else not in include/ is hidden. */
#define HCR_LEND __attribute__((visibility("default")))

/* Record a printf-style message as this thread's last error and return s. */
HCR_LEND hcr_status hcr__fail(hcr_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message: "<prefix>: <old message>". Returns s. */
HCR_LEND hcr_status hcr__fail_prefix(hcr_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hcr_clear_error(void);

/* a * b (* c) without overflow; false if it would overflow. */
static inline bool hcr_mul_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

/* xoshiro256** seeded through splitmix64: small, fast, and the same stream
 * on every platform, which the determinism promise needs. */
typedef struct hcr_rng {
    uint64_t s[4];
} hcr_rng;

void hcr_rng_seed(hcr_rng *r, uint64_t seed);
uint64_t hcr_rng_next(hcr_rng *r);
/* Uniform in [0, 1) with 24 random bits. */
float hcr_rng_uniform(hcr_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint32_t hcr_rng_below(hcr_rng *r, uint32_t n);

/* Number of threads in use (after hcr_set_threads). */
int hcr_threads(void);

/* Duplicate a string; NULL on allocation failure. */
HCR_LEND char *hcr__strdup(const char *s);

/* fileio.c: open a file the user named for reading. Anything but a regular
 * file (a directory, a FIFO, a device, a socket) is refused at once, without
 * blocking and without reading it, with HCR_EIO and a message naming the
 * path ("x: is a FIFO (named pipe), not a regular file"). The descriptor is
 * O_CLOEXEC and blocking; st (may be NULL) gets its fstat(). */
struct stat;
HCR_LEND hcr_status hcr__open_regular(const char *path, int *fd, struct stat *st);
/* The same as a FILE* opened "rb". */
HCR_LEND hcr_status hcr__fopen_regular(const char *path, FILE **f);
/* What a st_mode is, in words: "a FIFO (named pipe)", "a directory"... */
const char *hcr_file_kind(unsigned mode);

/* dataset.c: free a dataset's class names (ds->class_names = NULL). */
void dataset_free_class_names(hcr_dataset *ds);
/* dataset.c: why a class name is unusable (empty, over 63 bytes, a control
 * character), or NULL if it is fine. */
HCR_LEND const char *hcr__class_name_problem(const char *s);

#endif
