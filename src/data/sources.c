/*
 * sources.c - where each downloadable dataset's files come from, and the
 * published checksum of each file: the table fetch.c downloads from and
 * registry.c checks loaded files against.
 */
#include "data/data.h"

#include <string.h>

static const source_set sources[] = {
    {"mnist",
     {{"train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", NULL},
      {"train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", NULL},
      {"t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", NULL},
      {"t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", NULL}},
     {"https://ossci-datasets.s3.amazonaws.com/mnist/",
      "https://storage.googleapis.com/cvdf-datasets/mnist/", "http://yann.lecun.com/exdb/mnist/", NULL},
     "HCR_MNIST_MIRRORS", true},
    {"fashion-mnist",
     {{"train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", NULL},
      {"train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", NULL},
      {"t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", NULL},
      {"t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", NULL}},
     {"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", NULL},
     "HCR_FASHION_MIRRORS", false},
    {"kmnist",
     {{"train-images-idx3-ubyte", NULL, "bdb82020997e1d708af4cf47b453dcf7"},
      {"train-labels-idx1-ubyte", NULL, "e144d726b3acfaa3e44228e80efcd344"},
      {"t10k-images-idx3-ubyte", NULL, "5c965bf0a639b31b8f53240b1b52f4d7"},
      {"t10k-labels-idx1-ubyte", NULL, "7320c461ea6c1c855c0b718fb2a4b134"}},
     {"http://codh.rois.ac.jp/kmnist/dataset/kmnist/", NULL},
     "HCR_KMNIST_MIRRORS", false},
};
#define NSOURCES ((int)(sizeof sources / sizeof sources[0]))


const source_set *data_source_find(const char *dataset)
{
    for (int i = 0; i < NSOURCES; i++)
        if (strcmp(sources[i].dataset, dataset) == 0) return &sources[i];
    return NULL;
}

/* Length of a file name without a directory and without ".gz". */
static const char *base_name(const char *file, size_t *len)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    *len = strlen(base);
    if (*len > 3 && strcmp(base + *len - 3, ".gz") == 0) *len -= 3;
    return base;
}

const char *dataset_file_sha256(const char *dataset, const char *file)
{
    const source_set *src = dataset && file ? data_source_find(dataset) : NULL;
    if (!src) return NULL;
    size_t len;
    const char *base = base_name(file, &len);
    for (int i = 0; i < NFILES; i++)
        if (strlen(src->files[i].name) == len && strncmp(src->files[i].name, base, len) == 0)
            return src->files[i].sha256;
    return NULL;
}

const char *hcr_known_sha256(const char *file_basename)
{
    return dataset_file_sha256("mnist", file_basename);
}
