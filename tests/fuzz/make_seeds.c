/*
 * make_seeds.c - writes the model files of the fuzz seed corpus
 * (tests/fuzz/model/seeds/) with the library itself, so they are exactly
 * what hcr_model_save writes: small architectures (a few hundred
 * parameters) covering every layer kind, with and without metadata and
 * class names; and the JPEG image seeds (tests/fuzz/image/seeds/), from
 * the PGM seeds make_images.py wrote, with hcr_image_write. Run by
 * tests/fuzz/make_seeds.sh; the results are committed.
 *
 *   make_seeds MODEL_DIR IMAGE_DIR
 */
#include "hcr.h"

#include <stdio.h>
#include <stdlib.h>

static int save(const char *dir, const char *name, const char *spec, int rows, int cols, int nc,
                const char *classes)
{
    hcr_model *m = NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (hcr_model_create(spec, rows, cols, nc, 1, &m) != HCR_OK) goto fail;
    if (classes && hcr_model_set_meta(m, "class_names", classes) != HCR_OK) goto fail;
    if (classes && hcr_model_set_meta(m, "dataset", "idx:letters") != HCR_OK) goto fail;
    if (hcr_model_save(m, path) != HCR_OK) goto fail;
    hcr_model_free(m);
    return 0;
fail:
    fprintf(stderr, "make_seeds: %s: %s\n", name, hcr_last_error());
    hcr_model_free(m);
    return 1;
}

/* IMAGE_DIR/<from> again as IMAGE_DIR/<to> (the format from the extension). */
static int convert(const char *dir, const char *from, const char *to)
{
    char in[1024], out[1024];
    snprintf(in, sizeof in, "%s/%s", dir, from);
    snprintf(out, sizeof out, "%s/%s", dir, to);
    hcr_image *img = NULL;
    if (hcr_image_load(in, &img) != HCR_OK || hcr_image_write(out, img->width, img->height, img->pixels) != HCR_OK) {
        fprintf(stderr, "make_seeds: %s: %s\n", to, hcr_last_error());
        hcr_image_free(img);
        return 1;
    }
    hcr_image_free(img);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make_seeds MODEL_DIR IMAGE_DIR\n");
        return 2;
    }
    const char *d = argv[1];
    int bad = 0;
    bad |= save(d, "dense.safetensors", "dense4", 4, 4, 2, NULL);
    bad |= save(d, "conv-pool.safetensors", "conv2-pool-dense4-drop0.5", 8, 8, 3, "[\"a\",\"b\",\"c\"]");
    bad |= save(d, "bn.safetensors", "conv2x2-bn-pool-dense3-bn", 6, 5, 2, NULL);
    bad |= save(d, "pool3.safetensors", "conv1x1-pool3-conv2x2-dense2", 7, 9, 4,
                "[\"zero\",\"\\u00e9\",\"\\u4e00\",\"x y\"]");
    bad |= convert(argv[2], "one.pgm", "one.jpg");
    bad |= convert(argv[2], "paper-gradient.pgm", "paper-gradient.jpg");
    return bad;
}
