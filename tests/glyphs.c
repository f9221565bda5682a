/*
 * glyphs.c - test fixtures: a small letters dataset in EMNIST's exact
 * layout, capital letters drawn with the DejaVu fonts at
 * random sizes, weights, slants, rotations and positions, made into 28x28
 * MNIST-style images by hcr_image_to_mnist, then stored the way NIST's
 * archive stores them:
 *
 *   emnist-letters-train-images-idx3-ubyte.gz   images transposed (column-major)
 *   emnist-letters-train-labels-idx1-ubyte.gz   labels 1..26
 *   emnist-letters-test-...                     the same for the test split
 *   emnist-letters-mapping.txt                  "1 65 97" ... "26 90 122"
 */
#include "glyphs.h"

#include <cairo.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define CANVAS 96

static uint64_t state = 0x9e3779b97f4a7c15ull;
static double uniform(void) /* [0, 1) */
{
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(state >> 11) / 9007199254740992.0;
}

/* Draw `text` dark on white into a w x h grey buffer. */
void glyphs_draw(uint8_t *grey, int w, int h, const char *text, double size, double angle,
                 double dx, double dy, int bold, int slant, int serif)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, serif ? "DejaVu Serif" : "DejaVu Sans",
                           slant ? CAIRO_FONT_SLANT_OBLIQUE : CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t ext;
    cairo_text_extents(cr, text, &ext);
    cairo_translate(cr, w / 2.0 + dx, h / 2.0 + dy);
    cairo_rotate(cr, angle);
    cairo_move_to(cr, -ext.x_bearing - ext.width / 2, -ext.y_bearing - ext.height / 2);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_show_text(cr, text);
    cairo_surface_flush(s);
    const unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const unsigned char *p = data + (size_t)y * stride + 4 * x;
            grey[(size_t)y * w + x] = (uint8_t)((p[0] + p[1] + p[2]) / 3);
        }
    cairo_destroy(cr);
    cairo_surface_destroy(s);
}

/* One random rendering of `letter` as a 28x28 MNIST-style image. */
int glyphs_letter(char letter, uint8_t out[784], int plain)
{
    uint8_t grey[CANVAS * CANVAS];
    char text[2] = {letter, 0};
    if (plain)
        glyphs_draw(grey, CANVAS, CANVAS, text, 56, 0, 0, 0, 0, 0, 0);
    else
        glyphs_draw(grey, CANVAS, CANVAS, text, 44 + 20 * uniform(), (uniform() - 0.5) * 0.35,
             (uniform() - 0.5) * 12, (uniform() - 0.5) * 12, uniform() < 0.4, uniform() < 0.3,
             uniform() < 0.3);
    hcr_image *img = NULL;
    if (hcr_image_from_grey(CANVAS, CANVAS, grey, &img) || hcr_image_to_mnist(img, out, NULL)) {
        fprintf(stderr, "fixture_letters: %s\n", hcr_last_error());
        hcr_image_free(img);
        return 1;
    }
    hcr_image_free(img);
    return 0;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static int write_split(const char *dir, const char *split, int per_class)
{
    const int n = 26 * per_class;
    uint8_t *pixels = malloc((size_t)n * 784), *labels = malloc((size_t)n);
    if (!pixels || !labels) return 1;
    for (int i = 0; i < n; i++) {
        int cls = i % 26; /* interleaved, like a shuffled set */
        uint8_t img[784];
        if (glyphs_letter((char)('A' + cls), img, 0)) return 1;
        /* EMNIST stores image column by column */
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) pixels[(size_t)i * 784 + x * 28 + y] = img[y * 28 + x];
        labels[i] = (uint8_t)(cls + 1);
    }
    char path[4096];
    unsigned char head[16];
    snprintf(path, sizeof path, "%s/emnist-letters-%s-images-idx3-ubyte.gz", dir, split);
    gzFile f = gzopen(path, "wb");
    if (!f) return 1;
    be32(head, 0x803);
    be32(head + 4, (uint32_t)n);
    be32(head + 8, 28);
    be32(head + 12, 28);
    gzwrite(f, head, 16);
    gzwrite(f, pixels, (unsigned)n * 784);
    gzclose(f);
    snprintf(path, sizeof path, "%s/emnist-letters-%s-labels-idx1-ubyte.gz", dir, split);
    f = gzopen(path, "wb");
    if (!f) return 1;
    be32(head, 0x801);
    be32(head + 4, (uint32_t)n);
    gzwrite(f, head, 8);
    gzwrite(f, labels, (unsigned)n);
    gzclose(f);
    free(pixels);
    free(labels);
    return 0;
}

int glyphs_write_emnist_letters(const char *dir, int per_class_train, int per_class_test)
{
    if (write_split(dir, "train", per_class_train) || write_split(dir, "test", per_class_test)) return 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/emnist-letters-mapping.txt", dir);
    FILE *m = fopen(path, "w");
    if (!m) return 1;
    for (int i = 0; i < 26; i++) fprintf(m, "%d %d %d\n", i + 1, 'A' + i, 'a' + i);
    return fclose(m) != 0;
}

int glyphs_write_word(const char *text, const char *path)
{
    int len = (int)strlen(text), w = 40 + 90 * len, h = 150;
    uint8_t *grey = malloc((size_t)w * h), *cell = malloc(110 * 150);
    if (!grey || !cell) {
        free(grey);
        free(cell);
        return 1;
    }
    memset(grey, 255, (size_t)w * h);
    for (int i = 0; i < len; i++) {
        char one[2] = {text[i], 0};
        glyphs_draw(cell, 110, 150, one, 80, (uniform() - 0.5) * 0.2, 0, (uniform() - 0.5) * 10, 0, 0, 0);
        for (int y = 0; y < 150; y++)
            for (int x = 0; x < 110; x++) {
                int gx = 90 * i + x + 10;
                if (gx < w && cell[y * 110 + x] < grey[y * w + gx]) grey[y * w + gx] = cell[y * 110 + x];
            }
    }
    int rc = hcr_image_write(path, w, h, grey) ? 1 : 0;
    free(grey);
    free(cell);
    return rc;
}
