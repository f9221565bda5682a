/*
 * image.h - internals of image.c shared with its tests (the fuzz harnesses
 * of tests/fuzz/): the ink map (an image at working resolution, ink light,
 * background suppressed, with its connected components), rendering a
 * character from it, and the checks made before stb_image sees a file.
 */
#ifndef HCR_IMAGE_H
#define HCR_IMAGE_H

#include "hcr.h"

typedef struct ink_comp {
    int x0, y0, x1, y1; /* bounding box, exclusive ends */
    long area;          /* pixels                       */
    int keep;           /* 0: a speck, ignored          */
} ink_comp;

typedef struct ink_map {
    int w, h;          /* working size                                  */
    int f;             /* input pixels per working pixel, each way     */
    int inverted;      /* the input had dark ink on light paper        */
    int threshold;     /* Otsu threshold of the flattened ink          */
    float *v;          /* w*h ink levels 0..1                          */
    int *lab;          /* w*h component labels, 0 = not ink            */
    int ncomp;
    ink_comp *comps;   /* [1..ncomp]                                   */
} ink_map;

/* 0 if the bytes are a JPEG with a Huffman table stb_image would overflow
 * (more than 256 codes), else 1; hcr_image_load_memory refuses the former. */
int jpeg_huffman_ok(const uint8_t *b, size_t len);
/* 0 if the bytes are a binary PGM/PPM whose header holds a number past
 * INT_MAX (stb_image overflows reading it), else 1; likewise refused. */
int pnm_header_ok(const uint8_t *b, size_t len);

hcr_status ink_prepare(const hcr_image *img, ink_map *k);
void ink_free(ink_map *k);

/* A character: the ink of the components c with group[c] == g, within
 * columns [xa, xb) and, for a piece cut out of touching characters, within
 * [lo[y], hi[y]) on each row y (lo and hi have one entry per row, or are
 * NULL). */
typedef struct ink_sel {
    int g;
    int xa, xb;
    const int *lo, *hi;
} ink_sel;

/* Thicken: each pixel of the w x h image (values >= 0) becomes the largest
 * within r pixels across and down (a square max filter; 0 outside), in
 * place, in time independent of r. */
hcr_status ink_dilate(float *buf, int w, int h, int r);

/* Render a character to 28x28 MNIST style; box (may be NULL) gets x, y, w,
 * h of its ink in input pixels. */
hcr_status render_char(const ink_map *k, const int *group, const ink_sel *sel, uint8_t out[28 * 28],
                       int box[4]);

#endif
