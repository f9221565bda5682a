/*
 * image.h - internals of image.c shared with nothing else yet: the ink map
 * (an image at working resolution, ink light, background suppressed, with
 * its connected components) and rendering a character from it.
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

/* Render a character to 28x28 MNIST style; box (may be NULL) gets x, y, w,
 * h of its ink in input pixels. */
hcr_status render_char(const ink_map *k, const int *group, const ink_sel *sel, uint8_t out[28 * 28],
                       int box[4]);

#endif
