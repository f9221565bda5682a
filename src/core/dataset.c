/*
 * dataset.c - datasets in memory: class names, slices, freeing. Reading
 * them from files (IDX, named datasets, downloads) is data/'s work; these
 * are the parts every program needs, training and inference alike.
 */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>

#define NAME_MAX_BYTES 63

/* ------------------------------------------------------------ class names */

const char *hcr_dataset_class_name(const hcr_dataset *ds, int i)
{
    /* Numbers for unnamed classes; a small table so the pointer stays valid. */
    static const char *const numbers[] = {
        "0",  "1",  "2",  "3",  "4",  "5",  "6",  "7",  "8",  "9",  "10", "11", "12",
        "13", "14", "15", "16", "17", "18", "19", "20", "21", "22", "23", "24", "25",
        "26", "27", "28", "29", "30", "31", "32", "33", "34", "35", "36", "37", "38",
        "39", "40", "41", "42", "43", "44", "45", "46", "47", "48", "49", "50", "51",
        "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63",
    };
    if (!ds || i < 0 || i >= ds->num_classes) return "?";
    if (ds->class_names) return ds->class_names[i];
    return i < (int)(sizeof numbers / sizeof numbers[0]) ? numbers[i] : "?";
}

/* Why a class name is unusable, or NULL if it is fine. */
const char *hcr__class_name_problem(const char *s)
{
    if (!s || !*s) return "it is empty";
    if (strlen(s) > NAME_MAX_BYTES) return "it is longer than 63 bytes";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return "it holds a control character";
    return NULL;
}

void dataset_free_class_names(hcr_dataset *ds)
{
    if (!ds || !ds->class_names) return;
    for (int i = 0; i < ds->num_classes; i++) free(ds->class_names[i]);
    free(ds->class_names);
    ds->class_names = NULL;
}

hcr_status hcr_dataset_set_class_names(hcr_dataset *ds, int n, const char *const *names)
{
    if (!ds || !names || n < 1 || n > 1000)
        return hcr__fail(HCR_EINVAL, "hcr_dataset_set_class_names: need a dataset and 1 to 1000 names");
    for (int i = 0; i < ds->count; i++)
        if (ds->labels[i] >= n)
            return hcr__fail(HCR_EFORMAT, "%d class names, but image %d has label %d", n, i,
                            ds->labels[i]);
    for (int i = 0; i < n; i++) {
        const char *why = hcr__class_name_problem(names[i]);
        if (why) return hcr__fail(HCR_EFORMAT, "class name %d ('%.40s'): %s", i, names[i] ? names[i] : "", why);
        for (int j = 0; j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                return hcr__fail(HCR_EFORMAT, "class names %d and %d are both '%s'", j, i, names[i]);
    }
    char **copy = calloc((size_t)n, sizeof *copy);
    if (!copy) return hcr__fail(HCR_ENOMEM, "out of memory for class names");
    for (int i = 0; i < n; i++) {
        if (!(copy[i] = hcr__strdup(names[i]))) {
            for (int j = 0; j < i; j++) free(copy[j]);
            free(copy);
            return hcr__fail(HCR_ENOMEM, "out of memory for class names");
        }
    }
    dataset_free_class_names(ds);
    ds->class_names = copy;
    ds->num_classes = n;
    return HCR_OK;
}

/* ---------------------------------------------------------------- slices */

hcr_status hcr_dataset_slice(const hcr_dataset *ds, int start, int count, hcr_dataset **out)
{
    if (!out) return hcr__fail(HCR_EINVAL, "hcr_dataset_slice: out is NULL");
    *out = NULL;
    if (!ds) return hcr__fail(HCR_EINVAL, "hcr_dataset_slice: dataset is NULL");
    if (start < 0 || count < 1 || start > ds->count || count > ds->count - start)
        return hcr__fail(HCR_EINVAL,
                        "slice of %d images from index %d does not fit a dataset of %d images",
                        count, start, ds->count);
    size_t image = (size_t)ds->rows * (size_t)ds->cols, bytes;
    if (!hcr_mul_size(image, (size_t)count, &bytes))
        return hcr__fail(HCR_ENOMEM, "slice of %d images is too large", count);

    hcr_dataset *s = calloc(1, sizeof *s);
    if (!s) return hcr__fail(HCR_ENOMEM, "out of memory for a dataset");
    s->pixels = malloc(bytes);
    s->labels = malloc((size_t)count);
    if (!s->pixels || !s->labels) {
        hcr_dataset_free(s);
        return hcr__fail(HCR_ENOMEM, "out of memory for a slice of %d images", count);
    }
    memcpy(s->pixels, ds->pixels + (size_t)start * image, bytes);
    memcpy(s->labels, ds->labels + start, (size_t)count);
    s->count = count;
    s->rows = ds->rows;
    s->cols = ds->cols;
    /* The parent's class count, so every slice of one dataset agrees, and
     * the parent's file checksums, which say where the images came from. */
    s->num_classes = ds->num_classes;
    memcpy(s->images_sha256, ds->images_sha256, sizeof s->images_sha256);
    memcpy(s->labels_sha256, ds->labels_sha256, sizeof s->labels_sha256);
    if (ds->class_names &&
        hcr_dataset_set_class_names(s, ds->num_classes, (const char *const *)ds->class_names) != HCR_OK) {
        hcr_dataset_free(s);
        return HCR_ENOMEM;
    }
    *out = s;
    return HCR_OK;
}

void hcr_dataset_free(hcr_dataset *ds)
{
    if (!ds) return;
    dataset_free_class_names(ds);
    free(ds->pixels);
    free(ds->labels);
    free(ds);
}
