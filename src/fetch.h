/*
 * fetch.h - what fetch.c offers the rest of hcr beyond the public
 * hcr_fetch_dataset: the known checksums of the dataset files, so the CLI
 * can record in a model's metadata exactly which data it was trained on.
 */
#ifndef HCR_FETCH_H
#define HCR_FETCH_H

/* The expected SHA-256 (lowercase hex) of the uncompressed content of a
 * known dataset file, given its name with or without ".gz" and with or
 * without a leading directory ("train-images-idx3-ubyte.gz"); NULL if the
 * file is not one we know. */
const char *hcr_known_sha256(const char *file_basename);

#endif
