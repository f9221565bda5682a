/*
 * fuzz_image.c - libFuzzer harness for what `hcr predict` does to an image
 * file (src/vision/image.c): decoding with stb_image (hcr_image_load_memory: PNG,
 * JPEG, BMP, GIF, PGM/PPM, TGA, PSD, HDR, grey conversion, alpha
 * compositing, the size limits) and preprocessing one character to MNIST's
 * 28x28 (hcr_image_to_mnist: polarity, paper flattening, Otsu, components,
 * cropping, scaling, centring).
 *
 * Input: an image file. stb_image is built into the library
 * (src/vision/stb.c), so the decoder is instrumented too.
 *
 * To keep each run fast, an input whose header claims more than
 * FUZZ_MAX_PIXELS pixels is skipped: the limits themselves (50 megapixels,
 * 256 MiB) are covered by tests/test_image.c, and what is left is the same
 * code on more pixels.
 *
 * Checked: the image has its claimed size; the ink box lies in the image;
 * the threshold is a grey level.
 */
#include "fuzz_common.h"
#include "vision/image.h"

#include <stb_image.h>

#define FUZZ_MAX_PIXELS (1L << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) return 0;
    int w = 0, h = 0, n = 0;
    /* (stbi_info itself overflows on what these two refuse.) */
    if (size > 0 && jpeg_huffman_ok(data, size) && pnm_header_ok(data, size) &&
        stbi_info_from_memory(data, (int)size, &w, &h, &n) &&
        (long long)w * h > FUZZ_MAX_PIXELS)
        return 0;

    hcr_image *img = NULL;
    hcr_status s = hcr_image_load_memory(data, size, "fuzz", &img);
    if (s != HCR_OK) {
        FUZZ_CHECK(img == NULL && hcr_last_error()[0], "failure without a message or with an image");
        return 0;
    }
    FUZZ_CHECK(img->width >= 1 && img->height >= 1 && (long long)img->width * img->height <= HCR_IMAGE_MAX_PIXELS,
               "%dx%d", img->width, img->height);
    uint8_t out[28 * 28];
    hcr_ink_info info;
    s = hcr_image_to_mnist(img, out, &info);
    if (s == HCR_OK) {
        FUZZ_CHECK(info.threshold >= 0 && info.threshold <= 255, "threshold %d", info.threshold);
        FUZZ_CHECK(info.x >= 0 && info.y >= 0 && info.w >= 1 && info.h >= 1 && info.x + info.w <= img->width &&
                       info.y + info.h <= img->height,
                   "ink box %d,%d %dx%d in a %dx%d image", info.x, info.y, info.w, info.h, img->width,
                   img->height);
        int ink = 0;
        for (int i = 0; i < 28 * 28; i++) ink |= out[i];
        FUZZ_CHECK(ink, "a character without ink");
    } else {
        FUZZ_CHECK(hcr_last_error()[0], "failure without a message");
    }
    hcr_image_free(img);
    return 0;
}
