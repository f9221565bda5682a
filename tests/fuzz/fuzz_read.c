/*
 * fuzz_read.c - libFuzzer harness for the line reader behind `hcr read`
 * (hcr_read_line, src/vision/image.c): connected components, merging pieces that
 * lie over each other, joining fragments, cutting touching characters
 * along a seam, rendering each character and classifying it.
 *
 * Input: a small image file (binary PGM seeds let the mutator change pixels
 * directly; PNG and others go through the decoder). Images larger than
 * FUZZ_MAX_W x FUZZ_MAX_H (or FUZZ_MAX_PIXELS in all) are skipped so each
 * run stays fast. The model is a small 28x28 CNN with random weights built
 * at start-up: the reader's decisions depend on the classifier's
 * probabilities, which random weights vary as well as trained ones.
 *
 * Checked: every character's box lies in the image, its class is one of
 * the model's, probabilities sum to 1, the text is the class names joined.
 */
#include "fuzz_common.h"
#include "vision/image.h"

#include <math.h>
#include <stb_image.h>

#define FUZZ_MAX_W 1024
#define FUZZ_MAX_H 256
#define FUZZ_MAX_PIXELS 32768L

static hcr_model *model;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hcr_set_threads(1);
    if (hcr_model_create("conv8-pool-dense32", 28, 28, 10, 7, &model) != HCR_OK) {
        fprintf(stderr, "fuzz_read: %s\n", hcr_last_error());
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > (1u << 20)) return 0;
    int w = 0, h = 0, n = 0;
    /* (stbi_info itself overflows on what these two refuse.) */
    if (!jpeg_huffman_ok(data, size) || !pnm_header_ok(data, size) ||
        !stbi_info_from_memory(data, (int)size, &w, &h, &n) ||
        w > FUZZ_MAX_W || h > FUZZ_MAX_H || (long)w * h > FUZZ_MAX_PIXELS)
        return 0;
    hcr_image *img = NULL;
    if (hcr_image_load_memory(data, size, "fuzz", &img) != HCR_OK) return 0;

    hcr_line line;
    hcr_status s = hcr_read_line(model, img, &line);
    if (s == HCR_OK) {
        const int nc = hcr_model_num_classes(model);
        size_t len = 0;
        for (int i = 0; i < line.count; i++) {
            const hcr_char *c = &line.chars[i];
            FUZZ_CHECK(c->x >= 0 && c->y >= 0 && c->w >= 1 && c->h >= 1 && c->x + c->w <= img->width &&
                           c->y + c->h <= img->height,
                       "char %d box %d,%d %dx%d in a %dx%d image", i, c->x, c->y, c->w, c->h, img->width,
                       img->height);
            FUZZ_CHECK(c->cls >= 0 && c->cls < nc, "class %d", c->cls);
            double sum = 0;
            for (int k = 0; k < nc; k++) sum += c->probs[k];
            FUZZ_CHECK(isfinite(sum) && fabs(sum - 1) < 1e-3, "char %d: probabilities sum to %g", i, sum);
            FUZZ_CHECK(c->confidence == c->probs[c->cls], "confidence");
            len += strlen(hcr_model_class_name(model, c->cls));
        }
        FUZZ_CHECK(line.text && strlen(line.text) == len, "text '%s'", line.text ? line.text : "(null)");
        hcr_line_free(&line);
    } else {
        FUZZ_CHECK(hcr_last_error()[0] && line.count == 0 && !line.chars && !line.text,
                   "failure without a message or with a line");
    }
    hcr_image_free(img);
    return 0;
}
