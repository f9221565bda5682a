/*
 * image.c - real images in: decoding (stb_image), preprocessing one
 * character the way MNIST was made, reading a line of characters, and a
 * generator of multi-digit test images.
 *
 * Preprocessing works on an "ink map" of the image at a bounded working
 * resolution (at most WORK_MAX_PIXELS; larger images are box-averaged down
 * first): grey, ink made light (MNIST polarity), the local paper level
 * subtracted, Otsu's threshold giving the ink mask, grey levels kept
 * between LO_FRACTION of the threshold and the ink level, and the mask's
 * connected components labelled. A character is a set of components (and,
 * for touching characters, the part of them on one side of a cut),
 * rendered to 28x28 by render_char().
 */
#include "vision/image.h"
#include "core/internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stb_image.h>
#include <stb_image_write.h>

#define WORK_MAX_PIXELS 4000000L
/* The largest buffer a character is rendered in (floats): a square
 * character filling the whole working image needs under 10 million. */
#define RENDER_MAX_PIXELS 32000000L
#define SPECK_FRACTION 0.03   /* components below this share of the largest are noise */
#define MIN_CONTRAST 32       /* below this the image is blank                        */
#define MIN_STROKE 2.0        /* stroke width in 28x28 pixels below which ink is thickened */
/* Grey levels below this fraction of the ink threshold are paper. Low,
 * because MNIST keeps the faint anti-aliased rim of its strokes (down to
 * 1/255) and a character without it comes out narrower and thinner than
 * MNIST's; the rim is only taken next to a character's own strokes (see
 * render_char), so paper noise further away does not count. */
#define LO_FRACTION 0.2f
/* Cutting a piece into two characters: the log-odds in favour of a cut is
 *   SPLIT_BIAS + SPLIT_W * (w/H - 1) + SPLIT_H * (hmin/H - 0.75) - SPLIT_CROSS * crossed
 *   + SPLIT_GAIN * (log p(left) + log p(right) - log p(whole)) - SPLIT_WHOLE * log p(whole)
 * with w the piece's width, H the line height, hmin the height of the
 * lower half, crossed the ink the cut goes through in stroke widths and p()
 * the model's top probability. Two touching characters are wide, both
 * about as tall as the line, and meet briefly; a wide single character (a
 * flat 0, a 7 with a long bar, a W) has a short half or is cut through its
 * strokes, and the model reads it whole. The model's confidence alone
 * cannot tell them apart: it reads halves of characters as confidently as
 * characters. The weights are a logistic regression on numbers composed
 * from MNIST *training* digits, rounded, with the bias lowered from 3 to
 * 1.25 because cutting a character that stands alone is the worse mistake:
 * most handwriting does not touch, and models trained on shifted images
 * (--shift) read the halves of a 0 or of a 4 drawn in two strokes as
 * confident 1s. Pieces narrower than MIN_SPLIT_WIDTH line heights are not
 * tried. */
#define SPLIT_BIAS 1.25
#define SPLIT_W 14.0
#define SPLIT_H 8.0
#define SPLIT_CROSS 5.0
#define SPLIT_GAIN 7.5
#define SPLIT_WHOLE 2.5
#define MIN_SPLIT_WIDTH 0.75
#define FRAG_AREA 0.3 /* see join_fragments */
#define FRAG_HEIGHT 0.75
#define FRAG_SHORT 0.5
#define FRAG_WIDTH 1.25
#define FRAG_LOSS 0.5
#define SEAM_STEP 0.05    /* cost of a sideways step of a cut, against ink levels 0..1 */

/* ----------------------------------------------------------------- loading */

static hcr_status read_all(const char *path, uint8_t **data, size_t *len)
{
    const int is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "standard input" : path;
    /* A named file must be a regular one (a FIFO or a device is refused at
     * once); standard input may be a pipe. */
    FILE *f = stdin;
    if (!is_stdin) {
        hcr_status so = hcr__fopen_regular(path, &f);
        if (so != HCR_OK) return so;
    }
    size_t cap = 0, n = 0;
    uint8_t *buf = NULL;
    hcr_status s = HCR_OK;
    for (;;) {
        if (n == cap) {
            if (cap > (size_t)HCR_IMAGE_MAX_BYTES) {
                s = hcr__fail(HCR_EFORMAT, "'%s' is larger than %ld bytes, the limit for an image",
                             name, (long)HCR_IMAGE_MAX_BYTES);
                break;
            }
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > (size_t)HCR_IMAGE_MAX_BYTES + 1) ncap = (size_t)HCR_IMAGE_MAX_BYTES + 1;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                s = hcr__fail(HCR_ENOMEM, "out of memory reading '%s'", name);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) s = hcr__fail(HCR_EIO, "cannot read '%s': %s", name, strerror(errno));
            break;
        }
    }
    if (!is_stdin) fclose(f);
    if (s) {
        free(buf);
        return s;
    }
    *data = buf;
    *len = n;
    return HCR_OK;
}

hcr_status hcr_image_load(const char *path, hcr_image **out)
{
    if (!path || !out) return hcr__fail(HCR_EINVAL, "hcr_image_load: bad arguments");
    *out = NULL;
    uint8_t *data = NULL;
    size_t len = 0;
    hcr_status s = read_all(path, &data, &len);
    if (s) return s;
    s = hcr_image_load_memory(data, len, strcmp(path, "-") ? path : "standard input", out);
    free(data);
    return s;
}

static hcr_status image_alloc(int w, int h, hcr_image **out)
{
    hcr_image *img = calloc(1, sizeof *img);
    if (!img || !(img->pixels = malloc((size_t)w * h))) {
        free(img);
        return hcr__fail(HCR_ENOMEM, "out of memory for a %dx%d image", w, h);
    }
    img->width = w;
    img->height = h;
    *out = img;
    return HCR_OK;
}

/* stb_image as Debian 12 ships it trusts the code counts of a JPEG Huffman
 * table: a table of more than 256 codes is written past its arrays (a heap
 * buffer overflow, found by fuzzing, from stbi_info as well as from
 * decoding; newer stb_image refuses it). Walk the file's markers the way
 * stb_image finds them (any 0xFF, fill bytes skipped; segments by their
 * length; entropy-coded data up to the next marker) and check every DHT
 * segment's tables, reading past the end as zeros as stb_image does. True
 * if no table is too large (or the file is no JPEG). */
int jpeg_huffman_ok(const uint8_t *b, size_t len)
{
    size_t i = 0;
    if (len < 2 || b[0] != 0xff) return 1;
    while (i < len && b[i] == 0xff) i++;
    if (i >= len || b[i] != 0xd8) return 1; /* no SOI: not a JPEG to stb_image */
    i++;
    for (;;) {
        while (i < len && b[i] != 0xff) i++; /* stb_image resynchronises on 0xFF */
        while (i < len && b[i] == 0xff) i++;
        if (i >= len) return 1;
        const int m = b[i++];
        if (m == 0xd9) return 1;                                        /* EOI */
        if (m == 0x00 || m == 0x01 || m == 0xd8 || (m >= 0xd0 && m <= 0xd7)) continue; /* no length */
        const size_t seg = i + (i + 1 < len ? ((size_t)b[i] << 8 | b[i + 1]) : 0);
        if (m == 0xc4)
            for (size_t p = i + 2; p < seg && p < len;) {
                unsigned n = 0;
                for (size_t k = 1; k <= 16; k++) n += p + k < len ? b[p + k] : 0;
                if (n > 256) return 0;
                p += 17 + n;
            }
        i = seg > i + 2 ? seg : i + 2;
        if (m == 0xda) /* SOS: the entropy-coded data ends at a marker that is no RST */
            while (i + 1 < len && !(b[i] == 0xff && b[i + 1] != 0 && (b[i + 1] < 0xd0 || b[i + 1] > 0xd7))) i++;
    }
}

/* stb_image reads the numbers of a binary PGM/PPM header into an int with
 * no bound (a signed overflow, undefined behaviour, on "255444444444";
 * found by fuzzing). Read them the way it does (whitespace and # comments
 * skipped) and say whether they all fit. */
int pnm_header_ok(const uint8_t *b, size_t len)
{
    if (len < 2 || b[0] != 'P' || (b[1] != '5' && b[1] != '6')) return 1;
    size_t i = 2;
    for (int field = 0; field < 3; field++) {
        for (;;) {
            while (i < len && (b[i] == ' ' || (b[i] >= '\t' && b[i] <= '\r'))) i++;
            if (i >= len || b[i] != '#') break;
            while (i < len && b[i] != '\n' && b[i] != '\r') i++;
        }
        long long v = 0;
        for (; i < len && b[i] >= '0' && b[i] <= '9'; i++)
            if ((v = v * 10 + (b[i] - '0')) > INT_MAX) return 0;
    }
    return 1;
}

/* A PNG's header, checked before stb_image sees it: the size against the
 * limit, and every chunk up to IEND within the file. */
static hcr_status png_header_ok(const uint8_t *b, size_t len, const char *name)
{
    /* stb_image refuses huge PNGs with a vague message: say it here. */
    uint32_t pw = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
    uint32_t ph = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
    if ((uint64_t)pw * ph > (uint64_t)HCR_IMAGE_MAX_PIXELS)
        return hcr__fail(HCR_EFORMAT,
                        "'%s' is %ux%u pixels, more than the limit of %ld pixels (50 megapixels)",
                        name, pw, ph, (long)HCR_IMAGE_MAX_PIXELS);
    if (pw == 0 || ph == 0) return hcr__fail(HCR_EFORMAT, "'%s' has zero size (%ux%u)", name, pw, ph);
    /* stb_image grows its buffer to a chunk's claimed length before
     * reading the chunk (up to 1 GiB for a file of a few bytes): every
     * chunk up to IEND must fit in the file. */
    for (size_t off = 8; off + 8 <= len;) {
        uint32_t cl = (uint32_t)b[off] << 24 | (uint32_t)b[off + 1] << 16 | (uint32_t)b[off + 2] << 8 | b[off + 3];
        if (cl > len - off - 8)
            return hcr__fail(HCR_EFORMAT,
                            "'%s' is corrupt or truncated: the PNG chunk at byte %zu claims %u bytes, "
                            "more than the %zu left",
                            name, off, cl, len - off - 8);
        if (!memcmp(b + off + 4, "IEND", 4)) break;
        off += 12 + (size_t)cl;
    }
    return HCR_OK;
}

/* stb_image's n channels per pixel (grey, grey+alpha, RGB, RGBA) to grey
 * in img. */
static void grey_from_channels(const uint8_t *px, int n, hcr_image *img)
{
    const size_t np = (size_t)img->width * img->height;
    const int has_alpha = n == 2 || n == 4;
    /* Luma, and the alpha-weighted mean luma of the opaque part. */
    double lsum = 0, asum = 0;
    int translucent = 0;
    for (size_t i = 0; i < np; i++) {
        const uint8_t *p = px + i * n;
        int l = n >= 3 ? (299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000 : p[0];
        img->pixels[i] = (uint8_t)l;
        if (has_alpha) {
            int a = p[n - 1];
            if (a < 255) translucent = 1;
            lsum += (double)l * a;
            asum += a;
        }
    }
    if (translucent) {
        /* Composite over a background contrasting with the strokes. */
        const int bg = (asum > 0 && lsum / asum >= 128) ? 0 : 255;
        for (size_t i = 0; i < np; i++) {
            int a = px[i * n + n - 1];
            img->pixels[i] = (uint8_t)((img->pixels[i] * a + bg * (255 - a) + 127) / 255);
        }
    }
}

hcr_status hcr_image_load_memory(const void *data, size_t len, const char *name, hcr_image **out)
{
    if (!out || (!data && len)) return hcr__fail(HCR_EINVAL, "hcr_image_load_memory: bad arguments");
    *out = NULL;
    if (!name) name = "image";
    if (len == 0) return hcr__fail(HCR_EFORMAT, "'%s' is empty", name);
    if (len > (size_t)HCR_IMAGE_MAX_BYTES)
        return hcr__fail(HCR_EFORMAT, "'%s' is larger than %ld bytes, the limit for an image", name,
                        (long)HCR_IMAGE_MAX_BYTES);
    int w, h, n;
    const uint8_t *b = data;
    hcr_status s;
    if (len >= 24 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8) && !memcmp(b + 12, "IHDR", 4) &&
        (s = png_header_ok(b, len, name)) != HCR_OK)
        return s;
    if (!jpeg_huffman_ok(b, len))
        return hcr__fail(HCR_EFORMAT, "'%s' is corrupt: a JPEG Huffman table has more than 256 codes", name);
    if (!pnm_header_ok(b, len))
        return hcr__fail(HCR_EFORMAT, "'%s' is corrupt: a number in its PGM/PPM header is too large", name);
    if (!stbi_info_from_memory(data, (int)len, &w, &h, &n))
        return hcr__fail(HCR_EFORMAT,
                        "'%s' is not an image hcr can read (PNG, JPEG, BMP, GIF, PGM/PPM): %s", name,
                        stbi_failure_reason());
    if (w <= 0 || h <= 0) return hcr__fail(HCR_EFORMAT, "'%s' has zero size (%dx%d)", name, w, h);
    if ((long long)w * h > HCR_IMAGE_MAX_PIXELS)
        return hcr__fail(HCR_EFORMAT,
                        "'%s' is %dx%d pixels, more than the limit of %ld pixels (50 megapixels)",
                        name, w, h, (long)HCR_IMAGE_MAX_PIXELS);
    int w2, h2, n2;
    uint8_t *px = stbi_load_from_memory(data, (int)len, &w2, &h2, &n2, 0);
    if (!px)
        return hcr__fail(HCR_EFORMAT, "'%s' is corrupt or truncated: %s", name, stbi_failure_reason());
    if (w2 != w || h2 != h || n2 < 1 || n2 > 4) {
        stbi_image_free(px);
        return hcr__fail(HCR_EFORMAT, "'%s': the image data does not match its header", name);
    }
    hcr_image *img = NULL;
    s = image_alloc(w, h, &img);
    if (s == HCR_OK) {
        grey_from_channels(px, n2, img);
        *out = img;
    }
    stbi_image_free(px);
    return s;
}

hcr_status hcr_image_from_grey(int width, int height, const uint8_t *pixels, hcr_image **out)
{
    if (!out || !pixels || width <= 0 || height <= 0 ||
        (long long)width * height > HCR_IMAGE_MAX_PIXELS)
        return hcr__fail(HCR_EINVAL, "hcr_image_from_grey: bad arguments (%dx%d)", width, height);
    hcr_status s = image_alloc(width, height, out);
    if (s) return s;
    memcpy((*out)->pixels, pixels, (size_t)width * height);
    return HCR_OK;
}

void hcr_image_free(hcr_image *img)
{
    if (!img) return;
    free(img->pixels);
    free(img);
}

hcr_status hcr_image_write(const char *path, int width, int height, const uint8_t *pixels)
{
    if (!path || !pixels || width <= 0 || height <= 0)
        return hcr__fail(HCR_EINVAL, "hcr_image_write: bad arguments");
    const char *dot = strrchr(path, '.');
    int ok;
    if (dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")))
        ok = stbi_write_jpg(path, width, height, 1, pixels, 95);
    else
        ok = stbi_write_png(path, width, height, 1, pixels, width);
    if (!ok) return hcr__fail(HCR_EIO, "cannot write '%s'", path);
    return HCR_OK;
}

/* ----------------------------------------------------------------- ink map */

void ink_free(ink_map *k)
{
    free(k->v);
    free(k->lab);
    free(k->comps);
    memset(k, 0, sizeof *k);
}

/* The value at percentile q (0..1) of a 256-bin histogram of n values. */
static int hist_percentile(const long *hist, long n, double q)
{
    long want = (long)(q * (double)(n - 1)), acc = 0;
    for (int i = 0; i < 256; i++) {
        acc += hist[i];
        if (acc > want) return i;
    }
    return 255;
}

static int otsu(const long *hist, long n)
{
    double sum = 0;
    for (int i = 0; i < 256; i++) sum += (double)i * hist[i];
    double sumb = 0, best = -1;
    long wb = 0;
    int t = 0;
    for (int i = 0; i < 256; i++) {
        wb += hist[i];
        if (wb == 0) continue;
        long wf = n - wb;
        if (wf == 0) break;
        sumb += (double)i * hist[i];
        double mb = sumb / wb, mf = (sum - sumb) / wf;
        double between = (double)wb * wf * (mb - mf) * (mb - mf);
        if (between > best) {
            best = between;
            t = i;
        }
    }
    return t; /* ink: values > t */
}

static int uf_find(int *p, int x)
{
    while (p[x] != x) {
        p[x] = p[p[x]];
        x = p[x];
    }
    return x;
}

/* A new label (*label) in the union-find forest *parent (*cap entries,
 * *n used), its own root; on failure *parent is left as it was. */
static hcr_status uf_add(int **parent, int *cap, int *n, int *label)
{
    if (*n == *cap) {
        if (*cap > INT_MAX / 2) return hcr__fail(HCR_ENOMEM, "too many pieces of ink");
        int *np = realloc(*parent, sizeof *np * (size_t)*cap * 2);
        if (!np) return hcr__fail(HCR_ENOMEM, "out of memory labelling ink");
        *parent = np;
        *cap *= 2;
    }
    (*parent)[*n] = *n;
    *label = (*n)++;
    return HCR_OK;
}

/* Union the trees of the nn labels nb[]; their root is the smallest. */
static int uf_union(int *parent, const int *nb, int nn)
{
    int r = uf_find(parent, nb[0]);
    for (int j = 1; j < nn; j++) {
        int q = uf_find(parent, nb[j]);
        if (q < r) {
            parent[r] = q;
            r = q;
        } else if (q > r) {
            parent[q] = r;
        }
    }
    return r;
}

/* The first pass of labelling: each ink pixel takes the label of its
 * neighbours above and to the left, whose trees it joins, or a new one.
 * *parent_out gets the forest, *n_out its size (label 0 is no ink). */
static hcr_status label_pass(ink_map *k, const uint8_t *mask, int **parent_out, int *n_out)
{
    const int w = k->w, h = k->h;
    int cap = 1024, n = 0;
    int *parent = malloc(sizeof *parent * cap);
    if (!parent) return hcr__fail(HCR_ENOMEM, "out of memory labelling ink");
    parent[0] = 0;
    n = 1;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (!mask[i]) {
                k->lab[i] = 0;
                continue;
            }
            int nb[4], nn = 0;
            if (x > 0 && mask[i - 1]) nb[nn++] = k->lab[i - 1];
            if (y > 0) {
                size_t up = i - w;
                if (x > 0 && mask[up - 1]) nb[nn++] = k->lab[up - 1];
                if (mask[up]) nb[nn++] = k->lab[up];
                if (x + 1 < w && mask[up + 1]) nb[nn++] = k->lab[up + 1];
            }
            if (nn > 0) {
                k->lab[i] = uf_union(parent, nb, nn);
            } else {
                hcr_status s = uf_add(&parent, &cap, &n, &k->lab[i]);
                if (s) {
                    free(parent);
                    return s;
                }
            }
        }
    }
    *parent_out = parent;
    *n_out = n;
    return HCR_OK;
}

/* The second pass: the roots of the forest (parent, n labels) become
 * 1..ncomp, and each component gets its bounding box and area. */
static hcr_status label_compact(ink_map *k, int *parent, int n)
{
    const int w = k->w, h = k->h;
    int *map = calloc((size_t)n, sizeof *map);
    if (!map) return hcr__fail(HCR_ENOMEM, "out of memory labelling ink");
    int nc = 0;
    for (int i = 1; i < n; i++) {
        int r = uf_find(parent, i);
        if (!map[r]) map[r] = ++nc;
        map[i] = map[r];
    }
    k->comps = calloc((size_t)nc + 1, sizeof *k->comps);
    if (!k->comps) {
        free(map);
        return hcr__fail(HCR_ENOMEM, "out of memory labelling ink");
    }
    k->ncomp = nc;
    for (int c = 1; c <= nc; c++) {
        k->comps[c].x0 = w;
        k->comps[c].y0 = h;
        k->comps[c].keep = 1;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            if (!k->lab[i]) continue;
            int c = k->lab[i] = map[k->lab[i]];
            ink_comp *cp = &k->comps[c];
            if (x < cp->x0) cp->x0 = x;
            if (y < cp->y0) cp->y0 = y;
            if (x + 1 > cp->x1) cp->x1 = x + 1;
            if (y + 1 > cp->y1) cp->y1 = y + 1;
            cp->area++;
        }
    free(map);
    return HCR_OK;
}

/* Label the 8-connected components of mask (nonzero lab on entry), fill
 * k->comps. */
static hcr_status label_components(ink_map *k, const uint8_t *mask)
{
    int *parent = NULL, n = 0;
    hcr_status s = label_pass(k, mask, &parent, &n);
    if (s) return s;
    s = label_compact(k, parent, n);
    free(parent);
    return s;
}

/* Pixel p of an image covered by a grid of n cells of B pixels: the two
 * cells to interpolate between (clamped at the edges) and the weight of
 * the second. */
static void grid_coord(int p, int B, int n, int *a, int *b, float *t)
{
    float f = (p + 0.5f) / B - 0.5f;
    int c = (int)floorf(f);
    *t = f - c;
    *a = c < 0 ? 0 : c >= n ? n - 1 : c;
    *b = c + 1 >= n ? n - 1 : c + 1 < 0 ? 0 : c + 1;
}

/* Box-average the image down by f each way into g (w x h). */
static void ink_downsample(const hcr_image *img, int f, int w, int h, uint8_t *g)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            long sum = 0, cnt = 0;
            for (int yy = y * f; yy < (y + 1) * f && yy < img->height; yy++)
                for (int xx = x * f; xx < (x + 1) * f && xx < img->width; xx++) {
                    sum += img->pixels[(size_t)yy * img->width + xx];
                    cnt++;
                }
            g[(size_t)y * w + x] = (uint8_t)((sum + cnt / 2) / cnt);
        }
}

/* Polarity: the ink is the side of the median with the longer tail. Dark
 * ink is made light (MNIST's polarity); returns whether it was. */
static int ink_make_light(uint8_t *g, size_t np)
{
    long hist[256] = {0};
    for (size_t i = 0; i < np; i++) hist[g[i]]++;
    int med = hist_percentile(hist, (long)np, 0.5), plo = hist_percentile(hist, (long)np, 0.001),
        phi = hist_percentile(hist, (long)np, 0.999);
    int inverted = (med - plo) > (phi - med);
    if (inverted)
        for (size_t i = 0; i < np; i++) g[i] = (uint8_t)(255 - g[i]);
    return inverted;
}

/* The paper level of each block of B x B pixels of g (w x h) in bgrid
 * (gw x gh): the 10th percentile of the block, then the minimum over its
 * 3x3 neighbourhood. pct is scratch of the same size. */
static void paper_grid(const uint8_t *g, int w, int h, int B, int gw, int gh, float *bgrid, float *pct)
{
    for (int by = 0; by < gh; by++)
        for (int bx = 0; bx < gw; bx++) {
            long bh[256] = {0}, cnt = 0;
            for (int y = by * B; y < (by + 1) * B && y < h; y++)
                for (int x = bx * B; x < (bx + 1) * B && x < w; x++) {
                    bh[g[(size_t)y * w + x]]++;
                    cnt++;
                }
            pct[by * gw + bx] = (float)hist_percentile(bh, cnt, 0.1);
        }
    for (int by = 0; by < gh; by++)
        for (int bx = 0; bx < gw; bx++) {
            float m = 255;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int yy = by + dy, xx = bx + dx;
                    if (yy < 0 || yy >= gh || xx < 0 || xx >= gw) continue;
                    if (pct[yy * gw + xx] < m) m = pct[yy * gw + xx];
                }
            bgrid[by * gw + bx] = m;
        }
}

/* Paper level: the 10th percentile of blocks, the minimum over 3x3
 * blocks, interpolated bilinearly; subtracted. k->v gets what is left of
 * g above the paper, fh its histogram. */
static hcr_status subtract_paper(ink_map *k, const uint8_t *g, long fh[256])
{
    const int w = k->w, h = k->h;
    int B = (w > h ? w : h) / 16;
    if (B < 4) B = 4;
    const int gw = (w + B - 1) / B, gh = (h + B - 1) / B;
    float *bgrid = malloc(sizeof *bgrid * 2 * (size_t)gw * gh);
    if (!bgrid) return hcr__fail(HCR_ENOMEM, "out of memory preprocessing");
    paper_grid(g, w, h, B, gw, gh, bgrid, bgrid + (size_t)gw * gh);
    for (int y = 0; y < h; y++) {
        int ya, yb;
        float ty;
        grid_coord(y, B, gh, &ya, &yb, &ty);
        for (int x = 0; x < w; x++) {
            int xa, xb;
            float tx;
            grid_coord(x, B, gw, &xa, &xb, &tx);
            float bg = (1 - ty) * ((1 - tx) * bgrid[ya * gw + xa] + tx * bgrid[ya * gw + xb]) +
                       ty * ((1 - tx) * bgrid[yb * gw + xa] + tx * bgrid[yb * gw + xb]);
            size_t i = (size_t)y * w + x;
            float d = g[i] - bg;
            if (d < 0) d = 0;
            k->v[i] = d;
            fh[(int)(d + 0.5f) > 255 ? 255 : (int)(d + 0.5f)]++;
        }
    }
    free(bgrid);
    return HCR_OK;
}

/* Otsu's threshold of the flattened ink (histogram fh of np values), not
 * below a quarter of the ink's contrast; fails when there is no ink. */
static hcr_status ink_threshold(const long fh[256], long np, int *t_out)
{
    int hi = hist_percentile(fh, np, 0.999);
    int mx = 255;
    while (mx > 0 && !fh[mx]) mx--;
    if (hi < MIN_CONTRAST && mx >= 2 * MIN_CONTRAST) hi = mx; /* very little ink */
    if (hi < MIN_CONTRAST)
        return hcr__fail(HCR_EFORMAT, "no ink found: the image is blank or has too little contrast");
    int t = otsu(fh, np);
    if (t < hi / 4) t = hi / 4;
    *t_out = t;
    return HCR_OK;
}

/* The mask of ink above threshold t, and the grey levels in k->v mapped
 * to 0..1 between LO_FRACTION of t (paper) and the ink level (the 90th
 * percentile of the ink). */
static void ink_levels(ink_map *k, const long fh[256], int t, uint8_t *mask)
{
    const size_t np = (size_t)k->w * k->h;
    long ih[256] = {0}, in = 0;
    for (int i = t + 1; i < 256; i++) {
        ih[i] = fh[i];
        in += fh[i];
    }
    int level = in ? hist_percentile(ih, in, 0.9) : 255;
    const float lo = LO_FRACTION * t;
    if (level <= lo + 1) level = (int)lo + 2;
    for (size_t i = 0; i < np; i++) {
        float d = k->v[i];
        mask[i] = d > t;
        float v = (d - lo) / (level - lo);
        k->v[i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
}

/* Components under SPECK_FRACTION of the largest (or of one pixel) are
 * specks, not ink. */
static void mark_specks(ink_map *k)
{
    long amax = 0;
    for (int c = 1; c <= k->ncomp; c++)
        if (k->comps[c].area > amax) amax = k->comps[c].area;
    for (int c = 1; c <= k->ncomp; c++)
        k->comps[c].keep = k->comps[c].area >= SPECK_FRACTION * amax && k->comps[c].area >= 2;
}

hcr_status ink_prepare(const hcr_image *img, ink_map *k)
{
    memset(k, 0, sizeof *k);
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0)
        return hcr__fail(HCR_EINVAL, "no image");
    /* Working resolution. */
    long long np0 = (long long)img->width * img->height;
    int f = 1;
    while (np0 / ((long long)f * f) > WORK_MAX_PIXELS) f++;
    const int w = (img->width + f - 1) / f, h = (img->height + f - 1) / f;
    const size_t np = (size_t)w * h;
    k->w = w;
    k->h = h;
    k->f = f;
    uint8_t *g = malloc(np), *mask = NULL;
    k->v = malloc(np * sizeof *k->v);
    k->lab = malloc(np * sizeof *k->lab);
    hcr_status s = HCR_OK;
    if (!g || !k->v || !k->lab) {
        s = hcr__fail(HCR_ENOMEM, "out of memory preprocessing a %dx%d image", w, h);
        goto done;
    }
    ink_downsample(img, f, w, h, g);
    k->inverted = ink_make_light(g, np);
    long fh[256] = {0};
    if ((s = subtract_paper(k, g, fh))) goto done;
    int t = 0;
    if ((s = ink_threshold(fh, (long)np, &t))) goto done;
    k->threshold = t;
    mask = malloc(np);
    if (!mask) {
        s = hcr__fail(HCR_ENOMEM, "out of memory preprocessing");
        goto done;
    }
    ink_levels(k, fh, t, mask);
    if ((s = label_components(k, mask))) goto done;
    if (k->ncomp == 0) {
        s = hcr__fail(HCR_EFORMAT, "no ink found: the image is blank or has too little contrast");
        goto done;
    }
    mark_specks(k);
done:
    free(g);
    free(mask);
    if (s) ink_free(k);
    return s;
}

/* --------------------------------------------------------------- rendering */

/* Resample rows of src (sn values each, stride 1, `count` rows at `pitch`)
 * to dn values with a tent filter whose radius grows with the reduction
 * (anti-aliased). */
static void resample_1d(const float *src, int sn, int sstep, int pitch, int count, float *dst,
                        int dn, int dstep, int dpitch)
{
    const double scale = (double)dn / sn, r = scale < 1 ? 1 / scale : 1;
    for (int o = 0; o < dn; o++) {
        double c = (o + 0.5) / scale - 0.5;
        int a = (int)ceil(c - r), b = (int)floor(c + r);
        if (a < 0) a = 0;
        if (b > sn - 1) b = sn - 1;
        double wsum = 0;
        for (int i = a; i <= b; i++) wsum += fmax(0, 1 - fabs(i - c) / r);
        for (int row = 0; row < count; row++) {
            double acc = 0;
            if (wsum > 0) {
                for (int i = a; i <= b; i++)
                    acc += fmax(0, 1 - fabs(i - c) / r) * src[(size_t)row * pitch + (size_t)i * sstep];
                acc /= wsum;
            } else {
                int i = (int)lround(c);
                i = i < 0 ? 0 : i >= sn ? sn - 1 : i;
                acc = src[(size_t)row * pitch + (size_t)i * sstep];
            }
            dst[(size_t)row * dpitch + (size_t)o * dstep] = (float)acc;
        }
    }
}

/* Resample like resample_1d, but reducing by area: each output value is
 * the mean of the input it covers (fractions at the ends), as when MNIST's
 * 20x20 characters were made from high-resolution bilevel scans. A tent
 * as wide as two output pixels would blur every edge by half a pixel more
 * than MNIST's. Enlarging interpolates linearly. */
static void area_1d(const float *src, int sn, int sstep, int pitch, int count, float *dst, int dn,
                    int dstep, int dpitch)
{
    if (dn >= sn) {
        resample_1d(src, sn, sstep, pitch, count, dst, dn, dstep, dpitch);
        return;
    }
    const double step = (double)sn / dn;
    for (int o = 0; o < dn; o++) {
        const double a = o * step, b = (o + 1) * step;
        const int ia = (int)a, ib = (int)ceil(b) < sn ? (int)ceil(b) : sn;
        for (int row = 0; row < count; row++) {
            double acc = 0;
            for (int i = ia; i < ib; i++) {
                const double lo = i > a ? i : a, hi = i + 1 < b ? i + 1 : b;
                if (hi > lo) acc += (hi - lo) * src[(size_t)row * pitch + (size_t)i * sstep];
            }
            dst[(size_t)row * dpitch + (size_t)o * dstep] = (float)(acc / step);
        }
    }
}

/* A w x h float image (values 0..1, ink light) to 28x28: the extent of its
 * nonzero pixels scaled so the longer side is 20, centre of mass at
 * (14, 14). */
static hcr_status to_28(const float *buf, int w, int h, uint8_t out[28 * 28])
{
    int x0 = w, y0 = h, x1 = 0, y1 = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (buf[(size_t)y * w + x] > 0) {
                if (x < x0) x0 = x;
                if (y < y0) y0 = y;
                if (x + 1 > x1) x1 = x + 1;
                if (y + 1 > y1) y1 = y + 1;
            }
    memset(out, 0, 28 * 28);
    if (x1 <= x0) return HCR_OK;
    const int cw = x1 - x0, ch = y1 - y0, L = cw > ch ? cw : ch;
    int ow = (int)lround((double)cw * 20 / L), oh = (int)lround((double)ch * 20 / L);
    if (ow < 1) ow = 1;
    if (oh < 1) oh = 1;
    float *tmp = malloc(sizeof *tmp * ((size_t)ow * ch + (size_t)ow * oh));
    if (!tmp) return hcr__fail(HCR_ENOMEM, "out of memory scaling a character");
    float *small = tmp + (size_t)ow * ch;
    const float *src = buf + (size_t)y0 * w + x0;
    area_1d(src, cw, 1, w, ch, tmp, ow, 1, ow);      /* rows    */
    area_1d(tmp, ch, ow, 1, ow, small, oh, ow, 1);   /* columns */
    double sum = 0, sx = 0, sy = 0;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            double v = small[y * ow + x];
            sum += v;
            sx += v * x;
            sy += v * y;
        }
    if (sum > 0) {
        int ox = (int)lround(14.0 - sx / sum), oy = (int)lround(14.0 - sy / sum);
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                int X = x + ox, Y = y + oy;
                if (X < 0 || X >= 28 || Y < 0 || Y >= 28) continue;
                long v = lround(small[y * ow + x] * 255);
                out[Y * 28 + X] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    }
    free(tmp);
    return HCR_OK;
}

/* out[x] = max(in[x - r .. x + r]) over a line of n values >= 0 (0 past
 * its ends), for `lanes` interleaved lines at once (value i of lane l at
 * i * lanes + l), in O(n) whatever r is (van Herk / Gil-Werman: the maxima
 * of blocks of 2r+1 values from their left and from their right; a window
 * is the suffix of one block and the prefix of the next). A stroke may be
 * thickened by hundreds of pixels in a huge image: the direct loop, O(n r),
 * took minutes there. g and h hold (n + 2r) * lanes values each. */
static void max_filter_lanes(const float *in, float *out, int n, int r, int lanes, float *g, float *h)
{
    const long W = 2L * r + 1, N = n + 2L * r;
#define PAD(i, l) ((i) < r || (i) >= r + n ? 0.0f : in[((i) - r) * lanes + (l)])
    for (long i = 0, k = 0; i < N; i++, k = k + 1 == W ? 0 : k + 1)
        for (int l = 0; l < lanes; l++)
            g[i * lanes + l] = k == 0 ? PAD(i, l) : fmaxf(g[(i - 1) * lanes + l], PAD(i, l));
    for (long i = N - 1; i >= 0; i--) {
        const int block_end = i == N - 1 || (i + 1) % W == 0;
        for (int l = 0; l < lanes; l++)
            h[i * lanes + l] = block_end ? PAD(i, l) : fmaxf(h[(i + 1) * lanes + l], PAD(i, l));
    }
#undef PAD
    for (long x = 0; x < n; x++)
        for (int l = 0; l < lanes; l++)
            out[x * lanes + l] = fmaxf(h[x * lanes + l], g[(x + W - 1) * lanes + l]);
}

/* Separable max filter of radius r on a w x h image, in place: rows one
 * by one, then columns in strips of STRIP (a cache line of each row at a
 * time, not one float per row). */
#define STRIP 16
hcr_status ink_dilate(float *buf, int w, int h, int r)
{
    const size_t n = (size_t)(w > h ? w : h), len = (n + 2 * (size_t)r) * STRIP;
    float *line = malloc(sizeof *line * (2 * n * STRIP + 2 * len));
    if (!line) return hcr__fail(HCR_ENOMEM, "out of memory");
    float *res = line + n * STRIP, *g = res + n * STRIP, *hh = g + len;
    for (int y = 0; y < h; y++) {
        float *row = buf + (size_t)y * w;
        memcpy(line, row, sizeof *line * w);
        max_filter_lanes(line, row, w, r, 1, g, hh);
    }
    for (int x0 = 0; x0 < w; x0 += STRIP) {
        const int lanes = w - x0 < STRIP ? w - x0 : STRIP;
        for (int y = 0; y < h; y++) memcpy(line + (size_t)y * lanes, buf + (size_t)y * w + x0, sizeof *line * lanes);
        max_filter_lanes(line, res, h, r, lanes, g, hh);
        for (int y = 0; y < h; y++) memcpy(buf + (size_t)y * w + x0, res + (size_t)y * lanes, sizeof *line * lanes);
    }
    free(line);
    return HCR_OK;
}
#undef STRIP

/* Is pixel (x, y) ink of the character sel? */
static inline int sel_has(const ink_map *k, const int *group, const ink_sel *sel, int x, int y)
{
    const int l = k->lab[(size_t)y * k->w + x];
    if (!l || group[l] != sel->g || x < sel->xa || x >= sel->xb) return 0;
    return !sel->lo || (x >= sel->lo[y] && x < sel->hi[y]);
}

/* Bounding box (x0, y0, x1, y1, exclusive ends) and area of the character
 * sel's labelled ink; 0 when it has none. */
static long sel_box(const ink_map *k, const int *group, const ink_sel *sel, int b[4])
{
    long area = 0;
    b[0] = k->w, b[1] = k->h, b[2] = 0, b[3] = 0;
    for (int c = 1; c <= k->ncomp; c++) {
        const ink_comp *cp = &k->comps[c];
        if (group[c] != sel->g || cp->x1 <= sel->xa || cp->x0 >= sel->xb) continue;
        for (int y = cp->y0; y < cp->y1; y++)
            for (int x = cp->x0; x < cp->x1; x++)
                if (k->lab[(size_t)y * k->w + x] == c && sel_has(k, group, sel, x, y)) {
                    if (x < b[0]) b[0] = x;
                    if (x + 1 > b[2]) b[2] = x + 1;
                    if (y < b[1]) b[1] = y;
                    if (y + 1 > b[3]) b[3] = y + 1;
                    area++;
                }
    }
    return area;
}

/* Chessboard distance to the nearest seed (d == 0 on entry) of a w x h map,
 * two passes, saturating at 65535. */
static void chessboard(uint16_t *d, int w, int h)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned m = d[(size_t)y * w + x];
            if (x > 0 && d[(size_t)y * w + x - 1] + 1u < m) m = d[(size_t)y * w + x - 1] + 1u;
            if (y > 0)
                for (int dx = -1; dx <= 1; dx++)
                    if (x + dx >= 0 && x + dx < w && d[(size_t)(y - 1) * w + x + dx] + 1u < m)
                        m = d[(size_t)(y - 1) * w + x + dx] + 1u;
            d[(size_t)y * w + x] = (uint16_t)(m > 65535 ? 65535 : m);
        }
    for (int y = h - 1; y >= 0; y--)
        for (int x = w - 1; x >= 0; x--) {
            unsigned m = d[(size_t)y * w + x];
            if (x + 1 < w && d[(size_t)y * w + x + 1] + 1u < m) m = d[(size_t)y * w + x + 1] + 1u;
            if (y + 1 < h)
                for (int dx = -1; dx <= 1; dx++)
                    if (x + dx >= 0 && x + dx < w && d[(size_t)(y + 1) * w + x + dx] + 1u < m)
                        m = d[(size_t)(y + 1) * w + x + dx] + 1u;
            d[(size_t)y * w + x] = (uint16_t)m;
        }
}

/* Stroke width of the character sel (box b, area pixels) ~ 2 * area /
 * boundary pixels. */
static double sel_stroke(const ink_map *k, const int *group, const ink_sel *sel, const int b[4], long area)
{
    long boundary = 0;
    for (int y = b[1]; y < b[3]; y++)
        for (int x = b[0]; x < b[2]; x++) {
            if (!sel_has(k, group, sel, x, y)) continue;
            boundary += x == b[0] || x + 1 == b[2] || y == b[1] || y + 1 == b[3] ||
                        !sel_has(k, group, sel, x - 1, y) || !sel_has(k, group, sel, x + 1, y) ||
                        !sel_has(k, group, sel, x, y - 1) || !sel_has(k, group, sel, x, y + 1);
        }
    return boundary ? 2.0 * area / boundary : 1;
}

hcr_status render_char(const ink_map *k, const int *group, const ink_sel *sel, uint8_t out[28 * 28],
                       int box[4])
{
    const int w = k->w;
    int b[4];
    const long area = sel_box(k, group, sel, b);
    if (area == 0) return hcr__fail(HCR_EFORMAT, "no ink found in the character");
    const int x0 = b[0], y0 = b[1], x1 = b[2], y1 = b[3], bw = x1 - x0, bh = y1 - y0;
    /* Thicken thin strokes so they come out about as wide as MNIST's after
     * scaling. */
    const double L = bw > bh ? bw : bh, stroke = sel_stroke(k, group, sel, b, area);
    int r = 0;
    if (stroke * 20 / L < MIN_STROKE) r = (int)ceil((MIN_STROKE * L / 20 - stroke) / 2);
    if (r > (int)(L / 8)) r = (int)(L / 8);
    /* The faint anti-aliased rim below the threshold belongs to the
     * character too (MNIST's 20 px box includes it, and leaving it out
     * makes characters narrower and thinner than MNIST's), but only the
     * rim of its own strokes: unlabelled pixels within `hl` (one output
     * pixel) of its ink and nearer to it than to any other ink. The
     * distances are taken over a margin of 2 * hl so that ink just
     * outside the rim still counts as other. */
    const int hl = (int)ceil(L / 20), m2 = 2 * hl;
    const int rx0 = x0 - m2 > 0 ? x0 - m2 : 0, ry0 = y0 - m2 > 0 ? y0 - m2 : 0;
    const int rx1 = x1 + m2 < w ? x1 + m2 : w, ry1 = y1 + m2 < k->h ? y1 + m2 : k->h;
    const int rw = rx1 - rx0, rh = ry1 - ry0, pw = rw + 2 * r, ph = rh + 2 * r;
    /* The thickening pads the box by r on every side: for a long thin
     * shape (a 20000 x 40 line) that is far more than the image. */
    if ((long long)pw * ph > RENDER_MAX_PIXELS)
        return hcr__fail(HCR_EFORMAT, "a character of %dx%d pixels is too long and thin to render (%lld pixels with "
                         "its thickening, at most %ld)", bw, bh, (long long)pw * ph, RENDER_MAX_PIXELS);
    uint16_t *own = malloc(sizeof *own * 2 * (size_t)rw * rh);
    float *buf = calloc((size_t)pw * ph, sizeof *buf);
    if (!own || !buf) {
        free(own);
        free(buf);
        return hcr__fail(HCR_ENOMEM, "out of memory rendering a character");
    }
    uint16_t *oth = own + (size_t)rw * rh;
    for (int y = ry0; y < ry1; y++)
        for (int x = rx0; x < rx1; x++) {
            const size_t j = (size_t)(y - ry0) * rw + (x - rx0);
            const int mine = sel_has(k, group, sel, x, y);
            own[j] = mine ? 0 : 65535;
            oth[j] = !mine && k->lab[(size_t)y * w + x] ? 0 : 65535;
        }
    chessboard(own, rw, rh);
    chessboard(oth, rw, rh);
    for (int y = ry0; y < ry1; y++)
        for (int x = rx0; x < rx1; x++) {
            const size_t j = (size_t)(y - ry0) * rw + (x - rx0);
            const int keep = own[j] == 0 || (!k->lab[(size_t)y * w + x] && own[j] <= hl && own[j] < oth[j]);
            if (keep) buf[(size_t)(y - ry0 + r) * pw + (x - rx0 + r)] = k->v[(size_t)y * w + x];
        }
    free(own);
    hcr_status s = r ? ink_dilate(buf, pw, ph, r) : HCR_OK;
    if (!s) s = to_28(buf, pw, ph, out);
    free(buf);
    if (box) {
        box[0] = x0 * k->f;
        box[1] = y0 * k->f;
        box[2] = bw * k->f;
        box[3] = bh * k->f;
    }
    return s;
}

hcr_status hcr_image_to_mnist(const hcr_image *img, uint8_t out[28 * 28], hcr_ink_info *info)
{
    if (!img || !out) return hcr__fail(HCR_EINVAL, "hcr_image_to_mnist: bad arguments");
    ink_map k;
    hcr_status s = ink_prepare(img, &k);
    if (s) return s;
    int *group = malloc(sizeof *group * ((size_t)k.ncomp + 1));
    if (!group) {
        ink_free(&k);
        return hcr__fail(HCR_ENOMEM, "out of memory");
    }
    group[0] = -1;
    for (int c = 1; c <= k.ncomp; c++) group[c] = k.comps[c].keep ? 0 : -1;
    int box[4];
    const ink_sel all = {0, 0, k.w, NULL, NULL};
    s = render_char(&k, group, &all, out, box);
    if (!s && info) {
        info->inverted = k.inverted;
        info->threshold = k.threshold;
        info->x = box[0];
        info->y = box[1];
        info->w = box[2] < img->width - box[0] ? box[2] : img->width - box[0];
        info->h = box[3] < img->height - box[1] ? box[3] : img->height - box[1];
    }
    free(group);
    ink_free(&k);
    return s;
}

/* ---------------------------------------------------------- reading a line */

typedef struct seg {
    int x0, y0, x1, y1; /* box of its ink, working pixels */
    ink_sel sel;        /* which ink: group, columns, per-row bounds of cuts */
    int *cut;           /* owned per-row bounds (lo then hi, 2 * h ints), or NULL */
    int joined;         /* a fragment was joined to it: not cut again */
} seg;

static void seg_free_all(seg *s, int n)
{
    if (!s) return;
    for (int i = 0; i < n; i++) free(s[i].cut);
    free(s);
}

/* Merge piece q into piece p: q's components join p's group, and p's box
 * grows to cover both. Only uncut pieces are merged. */
static void merge_seg(seg *p, const seg *q, int *group, int ncomp)
{
    for (int c = 1; c <= ncomp; c++)
        if (group[c] == q->sel.g) group[c] = p->sel.g;
    if (q->x0 < p->x0) p->x0 = q->x0;
    if (q->y0 < p->y0) p->y0 = q->y0;
    if (q->x1 > p->x1) p->x1 = q->x1;
    if (q->y1 > p->y1) p->y1 = q->y1;
}

static int cmp_seg(const void *a, const void *b)
{
    const seg *p = a, *q = b;
    return (p->x0 + p->x1) - (q->x0 + q->x1);
}

static int cmp_long(const void *a, const void *b)
{
    const long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static double best_logp(const float *p, int nc)
{
    float m = 0;
    for (int i = 0; i < nc; i++)
        if (p[i] > m) m = p[i];
    return log(m > 1e-9f ? m : 1e-9f);
}

/* The cheapest top-to-bottom path through piece s starting near column c
 * and staying within B columns of it: entering a pixel of the piece's ink
 * costs its level, each sideways step SEAM_STEP, so the path runs through
 * the gaps between touching characters and crosses ink only where they
 * touch. path[y] (rows y0..y1-1 of the piece) is the first column of the
 * right part. Returns the ink crossed. */
static double seam(const ink_map *k, const int *group, const seg *s, int c, int B, int *path,
                   double *D, signed char *mv)
{
    int xl = c - B, xr = c + B;
    if (xl < s->x0 + 1) xl = s->x0 + 1;
    if (xr > s->x1 - 1) xr = s->x1 - 1;
    /* A piece one or two columns wide: the one column c, kept inside the
     * piece (c may be its exclusive right end, past the ink map's last
     * column: found by fuzzing). */
    if (xr < xl) xl = xr = c < s->x0 ? s->x0 : c > s->x1 - 1 ? s->x1 - 1 : c;
    const int nw = xr - xl + 1, bh = s->y1 - s->y0;
#define INK(x, y) (sel_has(k, group, &s->sel, (x), (y)) ? k->v[(size_t)(y) * k->w + (x)] : 0)
    for (int yy = 0; yy < bh; yy++) {
        const int y = s->y0 + yy;
        for (int i = 0; i < nw; i++) {
            const int x = xl + i;
            const double cost = INK(x, y);
            double best;
            int bm = 0;
            if (yy == 0) {
                best = SEAM_STEP * abs(x - c);
            } else {
                best = D[(size_t)(yy - 1) * nw + i];
                /* A diagonal step passes a corner: it also cuts the
                 * lighter of the two pixels there, or the path would slip
                 * through a thin diagonal stroke for free. */
                for (int d = -1; d <= 1; d += 2) {
                    if (i + d < 0 || i + d >= nw) continue;
                    const double a = INK(x, y - 1), b = INK(x + d, y);
                    const double v = D[(size_t)(yy - 1) * nw + i + d] + SEAM_STEP + (a < b ? a : b);
                    if (v < best) {
                        best = v;
                        bm = d;
                    }
                }
            }
            D[(size_t)yy * nw + i] = best + cost;
            mv[(size_t)yy * nw + i] = (signed char)bm;
        }
    }
    int bi = 0;
    for (int i = 1; i < nw; i++)
        if (D[(size_t)(bh - 1) * nw + i] < D[(size_t)(bh - 1) * nw + bi]) bi = i;
    double ink = 0;
    for (int yy = bh - 1; yy >= 0; yy--) {
        const int x = xl + bi, y = s->y0 + yy, d = mv[(size_t)yy * nw + bi];
        path[yy] = x;
        ink += INK(x, y);
        if (d) {
            const double a = INK(x, y - 1), b = INK(x + d, y);
            ink += a < b ? a : b;
        }
        bi += d;
    }
#undef INK
    return ink;
}

/* Piece s cut along path (rows y0..y1-1 of s; elsewhere column c) into
 * a (left) and b (right), each with its own bounds. */
static hcr_status cut_seg(const ink_map *k, const int *group, const seg *s, const int *path, int c, seg *a,
                          seg *b)
{
    const int h = k->h;
    *a = *s;
    *b = *s;
    a->cut = malloc(sizeof *a->cut * 2 * (size_t)h);
    b->cut = malloc(sizeof *b->cut * 2 * (size_t)h);
    if (!a->cut || !b->cut) {
        free(a->cut);
        free(b->cut);
        a->cut = b->cut = NULL;
        return hcr__fail(HCR_ENOMEM, "out of memory splitting characters");
    }
    for (int y = 0; y < h; y++) {
        const int lo = s->sel.lo ? s->sel.lo[y] : s->sel.xa, hi = s->sel.lo ? s->sel.hi[y] : s->sel.xb;
        const int p = y >= s->y0 && y < s->y1 ? path[y - s->y0] : c;
        a->cut[y] = lo;
        a->cut[h + y] = p < hi ? p : hi;
        b->cut[y] = p > lo ? p : lo;
        b->cut[h + y] = hi;
    }
    a->sel.lo = a->cut;
    a->sel.hi = a->cut + h;
    b->sel.lo = b->cut;
    b->sel.hi = b->cut + h;
    int bx[4];
    sel_box(k, group, &a->sel, bx);
    a->x0 = bx[0], a->y0 = bx[1], a->x1 = bx[2], a->y1 = bx[3];
    sel_box(k, group, &b->sel, bx);
    b->x0 = bx[0], b->y0 = bx[1], b->x1 = bx[2], b->y1 = bx[3];
    return HCR_OK;
}

/* Try to cut piece s into two; on success fill a and b (which own their
 * bounds) and return 1. */
static int try_split(hcr_model *m, const ink_map *k, const int *group, const seg *s, int H, seg *a,
                     seg *b, hcr_status *err)
{
    const int nc = hcr_model_num_classes(m);
    const int w = s->x1 - s->x0, bh = s->y1 - s->y0;
    int step = w / 30;
    if (step < 1) step = 1;
    int lo = s->x0 + w / 5, hi = s->x1 - w / 5;
    int ncut = 0;
    for (int c = lo; c <= hi; c += step) ncut++;
    if (ncut == 0) return 0;
    int B = w / 6; /* how far a cut may wander from its start */
    if (B < 2) B = 2;
    uint8_t *px = malloc((size_t)(1 + 2 * ncut) * 784);
    float *pr = malloc(sizeof *pr * (size_t)(1 + 2 * ncut) * nc);
    int *paths = malloc(sizeof *paths * (size_t)ncut * bh);
    double *cross = malloc(sizeof *cross * 2 * (size_t)ncut), *minh = cross + ncut;
    double *D = malloc(sizeof *D * (size_t)bh * (2 * B + 1));
    signed char *mv = malloc((size_t)bh * (2 * B + 1));
    int found = 0;
    if (!px || !pr || !paths || !cross || !D || !mv) {
        *err = hcr__fail(HCR_ENOMEM, "out of memory splitting characters");
        goto done;
    }
    int sb[4];
    const long sarea = sel_box(k, group, &s->sel, sb);
    const double stroke = sel_stroke(k, group, &s->sel, sb, sarea);
    if ((*err = render_char(k, group, &s->sel, px, NULL))) goto done;
    int i = 0;
    for (int c = lo; c <= hi; c += step, i++) {
        int *path = paths + (size_t)i * bh;
        cross[i] = seam(k, group, s, c, B, path, D, mv) / stroke;
        seg l, r;
        if ((*err = cut_seg(k, group, s, path, c, &l, &r))) goto done;
        const int ok = render_char(k, group, &l.sel, px + (size_t)(1 + 2 * i) * 784, NULL) == HCR_OK &&
                       render_char(k, group, &r.sel, px + (size_t)(2 + 2 * i) * 784, NULL) == HCR_OK;
        const int lh = l.y1 - l.y0, rh = r.y1 - r.y0;
        minh[i] = ok ? (double)(lh < rh ? lh : rh) / H : -1;
        free(l.cut);
        free(r.cut);
    }
    if ((*err = hcr_model_predict(m, px, 1 + 2 * ncut, pr))) goto done;
    const double whole = best_logp(pr, nc);
    double bz = -1e30;
    int bi = -1;
    for (i = 0; i < ncut; i++) {
        if (minh[i] < 0) continue;
        const double lpl = best_logp(pr + (size_t)(1 + 2 * i) * nc, nc),
                     lpr = best_logp(pr + (size_t)(2 + 2 * i) * nc, nc);
        const double z = SPLIT_BIAS + SPLIT_W * ((double)w / H - 1) + SPLIT_H * (minh[i] - 0.75) -
                         SPLIT_CROSS * cross[i] + SPLIT_GAIN * (lpl + lpr - whole) - SPLIT_WHOLE * whole;
        if (z > bz) {
            bz = z;
            bi = i;
        }
    }
    if (bi >= 0 && bz > 0) {
        if ((*err = cut_seg(k, group, s, paths + (size_t)bi * bh, lo + bi * step, a, b))) goto done;
        found = 1;
    }
done:
    free(px);
    free(pr);
    free(paths);
    free(cross);
    free(D);
    free(mv);
    if (!*err) hcr_clear_error();
    return found;
}

/* Whether piece p (area pixels of ink) should try to join a neighbour:
 * it is flat (*flat), or a fragment (see join_fragments). */
static int wants_join(const ink_map *k, const int *group, const seg *p, long area, long med, int H,
                      int *flat)
{
    const int ph = p->y1 - p->y0;
    *flat = ph * 20 < H * 9;
    if (*flat) return 1;
    int parts = 0;
    if (area < FRAG_AREA * med && ph < FRAG_HEIGHT * H)
        for (int c = 1; c <= k->ncomp; c++) parts += group[c] == p->sel.g;
    return !(parts == 0 || (parts < 2 && ph >= FRAG_SHORT * H));
}

/* Which of piece i's neighbours nb[] (left, right) are within reach. */
static void neighbours_in_reach(const seg *segs, int n, int i, int flat, int H, const int nb[2],
                                int reach[2])
{
    for (int d = 0; d < 2; d++) {
        const int j = nb[d];
        if (j < 0 || j >= n) continue;
        const seg *p = &segs[i], *q = &segs[j];
        const int mw = (p->x1 > q->x1 ? p->x1 : q->x1) - (p->x0 < q->x0 ? p->x0 : q->x0);
        const int gap = p->x0 > q->x1 ? p->x0 - q->x1 : q->x0 > p->x1 ? q->x0 - p->x1 : 0;
        reach[d] = flat ? gap <= H / 2 : mw <= FRAG_WIDTH * H;
    }
}

/* The neighbour piece i joins (*best, -1 for none): the one side within
 * reach of a flat piece, else the model's choice (see join_fragments).
 * tg (ncomp + 1 groups), px (4 images) and pr (4 answers) are scratch. */
static hcr_status choose_neighbour(hcr_model *m, const ink_map *k, const int *group, const seg *segs,
                                   int i, int flat, const int nb[2], const int reach[2], int *tg,
                                   uint8_t *px, float *pr, int *best)
{
    const int nc = hcr_model_num_classes(m);
    hcr_status s;
    *best = -1;
    if (flat && reach[0] != reach[1]) {
        *best = reach[0] ? nb[0] : nb[1]; /* one side only: no need to ask */
        return HCR_OK;
    }
    if (!reach[0] && !reach[1]) return HCR_OK;
    /* px: each neighbour, and the piece joined with it. */
    int slot[2] = {-1, -1}, ni = 0;
    for (int d = 0; d < 2; d++) {
        if (!reach[d]) continue;
        const seg *p = &segs[i], *q = &segs[nb[d]];
        memcpy(tg, group, sizeof *tg * ((size_t)k->ncomp + 1));
        for (int c = 1; c <= k->ncomp; c++)
            if (tg[c] == q->sel.g) tg[c] = p->sel.g;
        if ((s = render_char(k, group, &q->sel, px + (size_t)ni * 784, NULL))) return s;
        if ((s = render_char(k, tg, &p->sel, px + (size_t)(ni + 1) * 784, NULL))) return s;
        slot[d] = ni;
        ni += 2;
    }
    if ((s = hcr_model_predict(m, px, ni, pr))) return s;
    double bestgain = flat ? -HUGE_VAL : -FRAG_LOSS;
    for (int d = 0; d < 2; d++) {
        if (slot[d] < 0) continue;
        const double gain = best_logp(pr + (size_t)(slot[d] + 1) * nc, nc) -
                            best_logp(pr + (size_t)slot[d] * nc, nc);
        if (gain > bestgain) {
            bestgain = gain;
            *best = nb[d];
        }
    }
    return HCR_OK;
}

/* Flat pieces (under 45% of the line height: the bar of a 5 drawn apart,
 * the dot of an i) and fragments (small and short pieces: the dots of a
 * broken stroke, a short stroke of a broken 4) join a neighbour. Which
 * one, and for a fragment whether at all, the model decides: the side
 * where it reads the neighbour with the piece most confidently compared
 * with the neighbour alone; a fragment joins only when
 *   log p(joined) > log p(neighbour) - FRAG_LOSS.
 * How confidently the piece is read alone does not count: fragments are
 * often read as confident 1s. Fragments have less than FRAG_AREA of the
 * median piece's ink, are shorter than FRAG_HEIGHT line heights, and are
 * made of several components or shorter than FRAG_SHORT (a small but whole
 * character is rarely all that); they are tried with a neighbour when the
 * two together are no wider than FRAG_WIDTH line heights, flat pieces with
 * a neighbour less than half a line height away. A piece with a fragment
 * joined is not cut again. segs is sorted left to right and stays so. */
static hcr_status join_fragments(hcr_model *m, const ink_map *k, int *group, seg *segs, int *np, int H)
{
    int n = *np;
    if (n < 2) return HCR_OK;
    const int nc = hcr_model_num_classes(m);
    long *area = malloc(sizeof *area * 2 * (size_t)n);
    int *tg = malloc(sizeof *tg * ((size_t)k->ncomp + 1));
    uint8_t *px = malloc(4 * 784);
    float *pr = malloc(sizeof *pr * 4 * (size_t)nc);
    hcr_status s = HCR_OK;
    if (!area || !tg || !px || !pr) {
        s = hcr__fail(HCR_ENOMEM, "out of memory reading a line");
        goto done;
    }
    {
        long *sorted = area + n;
        int b[4];
        for (int i = 0; i < n; i++) sorted[i] = area[i] = sel_box(k, group, &segs[i].sel, b);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_long);
    }
    const long med = area[n + n / 2];
    /* One pass: each piece is tried once (a line of many specks costs a
     * few model calls per speck, not per speck squared). */
    for (int i = 0; i < n && n > 1;) {
        int flat, best = -1;
        if (!wants_join(k, group, &segs[i], area[i], med, H, &flat)) {
            i++;
            continue;
        }
        int nb[2] = {i - 1, i + 1}, reach[2] = {0, 0};
        neighbours_in_reach(segs, n, i, flat, H, nb, reach);
        if ((s = choose_neighbour(m, k, group, segs, i, flat, nb, reach, tg, px, pr, &best))) goto done;
        if (best < 0) {
            i++;
            continue;
        }
        const int keep = best < i ? best : i, gone = best < i ? i : best;
        merge_seg(&segs[keep], &segs[gone], group, k->ncomp);
        if (!flat) segs[keep].joined = 1;
        area[keep] += area[gone];
        memmove(&segs[gone], &segs[gone + 1], sizeof *segs * (size_t)(n - gone - 1));
        memmove(&area[gone], &area[gone + 1], sizeof *area * (size_t)(n - gone - 1));
        n--;
        i = keep + 1;
    }
done:
    *np = n;
    free(area);
    free(tg);
    free(px);
    free(pr);
    return s;
}

/* One piece per component kept (group[c] its piece, -1 for specks). */
static hcr_status initial_pieces(const ink_map *k, int *group, seg *segs, int *np)
{
    int n = 0;
    group[0] = -1;
    for (int c = 1; c <= k->ncomp; c++) {
        group[c] = -1;
        if (!k->comps[c].keep) continue;
        group[c] = n;
        segs[n] = (seg){k->comps[c].x0, k->comps[c].y0, k->comps[c].x1, k->comps[c].y1, {n, 0, k->w, NULL, NULL}, NULL, 0};
        n++;
    }
    *np = n;
    if (n > 1000)
        return hcr__fail(HCR_EFORMAT, "%d separate pieces of ink: this does not look like a line of characters", n);
    return HCR_OK;
}

/* Merge pieces lying over each other (most of the narrower one's width,
 * and together no wider than 1.1 line heights), until none do. */
static void merge_overlapping(seg *segs, int *np, int *group, int ncomp, int H)
{
    int n = *np;
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < n && !changed; i++)
            for (int j = i + 1; j < n && !changed; j++) {
                seg *p = &segs[i], *q = &segs[j];
                int ov = (p->x1 < q->x1 ? p->x1 : q->x1) - (p->x0 > q->x0 ? p->x0 : q->x0);
                int wp = p->x1 - p->x0, wq = q->x1 - q->x0;
                int mw = (p->x1 > q->x1 ? p->x1 : q->x1) - (p->x0 < q->x0 ? p->x0 : q->x0);
                if (ov * 10 < (wp < wq ? wp : wq) * 7 || mw > H * 11 / 10) continue;
                merge_seg(p, q, group, ncomp);
                segs[j] = segs[--n];
                changed = 1;
            }
    }
    *np = n;
}

/* Split pieces wide enough to hold two characters; *segs grows. *np is
 * kept up to date, so that the caller can free what is there on failure. */
static hcr_status split_wide(hcr_model *m, const ink_map *k, int *group, seg **segs, int *np, int H)
{
    hcr_status s = HCR_OK;
    for (int i = 0; i < *np; i++) {
        seg *p = &(*segs)[i];
        if (p->joined || p->x1 - p->x0 < MIN_SPLIT_WIDTH * H) continue;
        seg a, b;
        if (!try_split(m, k, group, p, H, &a, &b, &s)) {
            if (s) return s;
            continue;
        }
        seg *ns = realloc(*segs, sizeof *ns * ((size_t)*np + 1));
        if (!ns) {
            free(a.cut);
            free(b.cut);
            return hcr__fail(HCR_ENOMEM, "out of memory reading a line");
        }
        *segs = ns;
        free(ns[i].cut);
        memmove(&ns[i + 2], &ns[i + 1], sizeof *ns * (size_t)(*np - i - 1));
        ns[i] = a;
        ns[i + 1] = b;
        (*np)++;
        i--; /* look at the left half again */
    }
    return HCR_OK;
}

/* out->text: the class names of the characters, joined. */
static hcr_status line_text(hcr_model *m, hcr_line *out)
{
    size_t tl = 1;
    for (int i = 0; i < out->count; i++) tl += strlen(hcr_model_class_name(m, out->chars[i].cls));
    out->text = malloc(tl);
    if (!out->text) return hcr__fail(HCR_ENOMEM, "out of memory reading a line");
    out->text[0] = '\0';
    for (int i = 0; i < out->count; i++) strcat(out->text, hcr_model_class_name(m, out->chars[i].cls));
    return HCR_OK;
}

/* Render the n pieces, classify them in one call, and fill out. */
static hcr_status read_pieces(hcr_model *m, const ink_map *k, const int *group, const seg *segs, int n,
                              const hcr_image *img, hcr_line *out)
{
    const int nc = hcr_model_num_classes(m);
    uint8_t *px = malloc((size_t)n * 784 + 1);
    float *pr = malloc(sizeof *pr * ((size_t)n * nc + 1));
    hcr_status s = HCR_OK;
    out->chars = calloc((size_t)n + 1, sizeof *out->chars);
    if (!px || !pr || !out->chars) {
        s = hcr__fail(HCR_ENOMEM, "out of memory reading a line");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        int box[4];
        if ((s = render_char(k, group, &segs[i].sel, px + (size_t)i * 784, box))) goto done;
        hcr_char *ch = &out->chars[i];
        ch->x = box[0];
        ch->y = box[1];
        ch->w = box[2] < img->width - box[0] ? box[2] : img->width - box[0];
        ch->h = box[3] < img->height - box[1] ? box[3] : img->height - box[1];
        memcpy(ch->pixels, px + (size_t)i * 784, 784);
    }
    if (n && (s = hcr_model_predict(m, px, n, pr))) goto done;
    for (int i = 0; i < n; i++) {
        hcr_char *ch = &out->chars[i];
        ch->probs = malloc(sizeof *ch->probs * nc);
        if (!ch->probs) {
            s = hcr__fail(HCR_ENOMEM, "out of memory reading a line");
            goto done;
        }
        out->count = i + 1;
        memcpy(ch->probs, pr + (size_t)i * nc, sizeof *ch->probs * nc);
        ch->cls = 0;
        for (int c = 1; c < nc; c++)
            if (ch->probs[c] > ch->probs[ch->cls]) ch->cls = c;
        ch->confidence = ch->probs[ch->cls];
    }
    out->count = n;
    s = line_text(m, out);
done:
    free(px);
    free(pr);
    return s;
}

hcr_status hcr_read_line(hcr_model *m, const hcr_image *img, hcr_line *out)
{
    if (!m || !img || !out) return hcr__fail(HCR_EINVAL, "hcr_read_line: bad arguments");
    memset(out, 0, sizeof *out);
    if (hcr_model_input_rows(m) != 28 || hcr_model_input_cols(m) != 28)
        return hcr__fail(HCR_EINVAL, "the model takes %dx%d images; reading needs 28x28",
                        hcr_model_input_rows(m), hcr_model_input_cols(m));
    ink_map k;
    hcr_status s = ink_prepare(img, &k);
    if (s) return s;
    int *group = malloc(sizeof *group * ((size_t)k.ncomp + 1));
    seg *segs = calloc((size_t)k.ncomp + 1, sizeof *segs);
    int n = 0;
    if (!group || !segs) {
        s = hcr__fail(HCR_ENOMEM, "out of memory reading a line");
        goto done;
    }
    if ((s = initial_pieces(&k, group, segs, &n))) goto done;
    /* Line height: the tallest piece. */
    int H = 1;
    for (int i = 0; i < n; i++)
        if (segs[i].y1 - segs[i].y0 > H) H = segs[i].y1 - segs[i].y0;
    merge_overlapping(segs, &n, group, k.ncomp, H);
    qsort(segs, (size_t)n, sizeof *segs, cmp_seg);
    if ((s = join_fragments(m, &k, group, segs, &n, H))) goto done;
    if ((s = split_wide(m, &k, group, &segs, &n, H))) goto done;
    s = read_pieces(m, &k, group, segs, n, img, out);
done:
    free(group);
    seg_free_all(segs, n);
    ink_free(&k);
    if (s) hcr_line_free(out);
    return s;
}

void hcr_line_free(hcr_line *line)
{
    if (!line) return;
    if (line->chars)
        for (int i = 0; i < line->count; i++) free(line->chars[i].probs);
    free(line->chars);
    free(line->text);
    memset(line, 0, sizeof *line);
}

/* --------------------------------------------------------------- generator */

typedef struct glyph {
    int w, h, x, y; /* size and place on the canvas */
    float *v;
} glyph;

/* Does glyph g at (x, y) come within one pixel of canvas ink >= level? */
static int touches(const float *canvas, int cw, int ch, const glyph *g, int x, int y, float level)
{
    for (int j = 0; j < g->h; j++)
        for (int i = 0; i < g->w; i++) {
            if (g->v[j * g->w + i] < level) continue;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int X = x + i + dx, Y = y + j + dy;
                    if (X >= 0 && X < cw && Y >= 0 && Y < ch && canvas[(size_t)Y * cw + X] >= level)
                        return 1;
                }
        }
    return 0;
}

/* A glyph: a random image of digits, cropped to its ink and scaled by
 * 0.85..1.15, its top placed at g->y above the baseline (with jitter).
 * Its class name is appended to text (*tl bytes so far, n in all). On
 * failure g->v may hold memory, which the caller frees. */
static hcr_status make_glyph(const hcr_dataset *digits, hcr_rng *rng, glyph *g, char *text, size_t n,
                             size_t *tl)
{
    const int R = digits->rows, C = digits->cols;
    int idx = (int)hcr_rng_below(rng, (uint32_t)digits->count);
    const uint8_t *p = digits->pixels + (size_t)idx * R * C;
    const char *nm = hcr_dataset_class_name(digits, digits->labels[idx]);
    const size_t nl = strlen(nm);
    if (*tl + nl >= n)
        return hcr__fail(HCR_EINVAL, "hcr_compose_number: the text does not fit %zu bytes", n);
    memcpy(text + *tl, nm, nl);
    *tl += nl;
    int x0 = C, y0 = R, x1 = 0, y1 = 0;
    for (int y = 0; y < R; y++)
        for (int x = 0; x < C; x++)
            if (p[y * C + x]) {
                if (x < x0) x0 = x;
                if (y < y0) y0 = y;
                if (x + 1 > x1) x1 = x + 1;
                if (y + 1 > y1) y1 = y + 1;
            }
    if (x1 <= x0) x0 = 0, y0 = 0, x1 = 1, y1 = 1;
    int bw = x1 - x0, bh = y1 - y0;
    double sc = 0.85 + 0.3 * hcr_rng_uniform(rng);
    int gw = (int)lround(bw * sc), gh = (int)lround(bh * sc);
    if (gw < 1) gw = 1;
    if (gh < 1) gh = 1;
    float *src = malloc(sizeof *src * ((size_t)bw * bh + (size_t)gw * bh));
    g->v = malloc(sizeof *g->v * (size_t)gw * gh);
    if (!src || !g->v) {
        free(src);
        return hcr__fail(HCR_ENOMEM, "out of memory");
    }
    for (int y = 0; y < bh; y++)
        for (int x = 0; x < bw; x++) src[y * bw + x] = p[(y + y0) * C + x + x0] / 255.0f;
    float *tmp = src + (size_t)bw * bh;
    resample_1d(src, bw, 1, bw, bh, tmp, gw, 1, gw);
    resample_1d(tmp, bh, gw, 1, gw, g->v, gh, gw, 1);
    free(src);
    g->w = gw;
    g->h = gh;
    /* Bottom-aligned on a baseline, with jitter. */
    g->y = -gh + (int)hcr_rng_below(rng, 7) - 3;
    return HCR_OK;
}

/* Place the glyphs left to right on the canvas (cw x ch, margin M, the
 * baseline at row base): a random gap of -2..5 pixels where the ink does
 * not touch, and the pair-th glyph pushed left until it touches its
 * neighbour. Returns the right edge of the rightmost box. */
static int place_glyphs(float *canvas, int cw, int ch, glyph *gl, int ndigits, int pair, int base,
                        int M, hcr_rng *rng)
{
    int right = M; /* right edge of the previous glyph's box */
    for (int d = 0; d < ndigits; d++) {
        glyph *g = &gl[d];
        int y = base + g->y;
        int x;
        if (d == 0) {
            x = M;
        } else if (d == pair) {
            x = right + 6;
            while (x > right - g->w && !touches(canvas, cw, ch, g, x, y, 0.5f)) x--;
        } else {
            x = right - 2 + (int)hcr_rng_below(rng, 8); /* gap -2..5 */
            while (touches(canvas, cw, ch, g, x, y, 1.0f / 255)) x++;
        }
        if (x + g->w > cw - 1) x = cw - 1 - g->w;
        g->x = x;
        for (int j = 0; j < g->h; j++)
            for (int i = 0; i < g->w; i++) {
                int X = x + i, Y = y + j;
                if (X < 0 || X >= cw || Y < 0 || Y >= ch) continue;
                float *c = &canvas[(size_t)Y * cw + X];
                if (g->v[j * g->w + i] > *c) *c = g->v[j * g->w + i];
            }
        if (x + g->w > right) right = x + g->w;
    }
    return right;
}

/* The canvas's (cw x ch, ink 0..1) first `width` columns as an image,
 * dark ink on white. */
static hcr_status canvas_image(const float *canvas, int cw, int ch, int width, hcr_image **out)
{
    hcr_image *img = NULL;
    hcr_status s = image_alloc(width, ch, &img);
    if (s) return s;
    for (int y = 0; y < ch; y++)
        for (int x = 0; x < width; x++) {
            long v = lround(canvas[(size_t)y * cw + x] * 255);
            img->pixels[(size_t)y * width + x] = (uint8_t)(255 - (v > 255 ? 255 : v < 0 ? 0 : v));
        }
    *out = img;
    return HCR_OK;
}

hcr_status hcr_compose_number(const hcr_dataset *digits, int ndigits, int touching, uint64_t seed,
                              hcr_image **out, char *text, size_t n)
{
    if (!digits || !out || !text || ndigits < 1 || ndigits > 64 || n < (size_t)ndigits + 1 ||
        digits->count < 1 || digits->rows < 4 || digits->cols < 4 || digits->rows > 256 ||
        digits->cols > 256 || (touching && ndigits < 2))
        return hcr__fail(HCR_EINVAL, "hcr_compose_number: bad arguments");
    *out = NULL;
    hcr_rng rng;
    hcr_rng_seed(&rng, seed);
    const int M = 8;
    glyph *gl = calloc((size_t)ndigits, sizeof *gl);
    float *canvas = NULL;
    hcr_status s = HCR_OK;
    if (!gl) return hcr__fail(HCR_ENOMEM, "out of memory");
    int maxh = 0, sumw = 0;
    size_t tl = 0; /* length of the text so far */
    for (int d = 0; d < ndigits; d++) {
        if ((s = make_glyph(digits, &rng, &gl[d], text, n, &tl))) goto done;
        if (gl[d].h > maxh) maxh = gl[d].h;
        sumw += gl[d].w;
    }
    text[tl] = '\0';
    const int pair = touching ? 1 + (int)hcr_rng_below(&rng, (uint32_t)(ndigits - 1)) : -1;
    const int ch = maxh + 6 + 2 * M, cw = sumw + 8 * ndigits + 2 * M;
    const int base = M + 3 + maxh;
    canvas = calloc((size_t)cw * ch, sizeof *canvas);
    if (!canvas) {
        s = hcr__fail(HCR_ENOMEM, "out of memory");
        goto done;
    }
    int right = place_glyphs(canvas, cw, ch, gl, ndigits, pair, base, M, &rng);
    int width = right + M < cw ? right + M : cw;
    s = canvas_image(canvas, cw, ch, width, out);
done:
    for (int d = 0; d < ndigits; d++) free(gl[d].v);
    free(gl);
    free(canvas);
    return s;
}
