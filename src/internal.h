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

/* Record a printf-style message as this thread's last error and return s. */
hcr_status hcr_fail(hcr_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message: "<prefix>: <old message>". Returns s. */
hcr_status hcr_fail_prefix(hcr_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
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
char *hcr_strdup(const char *s);

/* fileio.c: open a file the user named for reading. Anything but a regular
 * file (a directory, a FIFO, a device, a socket) is refused at once, without
 * blocking and without reading it, with HCR_EIO and a message naming the
 * path ("x: is a FIFO (named pipe), not a regular file"). The descriptor is
 * O_CLOEXEC and blocking; st (may be NULL) gets its fstat(). */
struct stat;
hcr_status hcr_open_regular(const char *path, int *fd, struct stat *st);
/* The same as a FILE* opened "rb". */
hcr_status hcr_fopen_regular(const char *path, FILE **f);
/* What a st_mode is, in words: "a FIFO (named pipe)", "a directory"... */
const char *hcr_file_kind(unsigned mode);

/* datasets.c / fetch.c: datasets by name. */
/* The published SHA-256 of a dataset file's uncompressed content
 * ("train-images-idx3-ubyte"), NULL if none is known. */
const char *dataset_file_sha256(const char *dataset, const char *file);
/* The complete system copy of a dataset (Fashion-MNIST's Debian package);
 * HCR_EIO (no message) if there is none. */
hcr_status dataset_system_dir(const char *name, char *buf, size_t n);
/* Parse an EMNIST mapping file into n class names; first is its first label. */
hcr_status dataset_parse_mapping(const char *path, char ***names, int *n, int *first);
void dataset_free_class_names(hcr_dataset *ds);
/* The known datasets' names, comma-separated, into buf (size n). */
void dataset_known_list(char *buf, size_t n);

/* train.c: image `src` (rows x cols) copied to dst moved by (dx, dy) pixels
 * (blank where it moved away from), mirrored left to right if `flip`
 * (after the move). */
void augment_image(uint8_t *dst, const uint8_t *src, int rows, int cols, int dx, int dy, int flip);
/* train.c: the learning rate of step `step` (from 0) of `total`. */
float train_lr_at(const hcr_train_config *cfg, long step, long total);

#endif
