/*
 * image.c - real images in: decoding (stb_image), preprocessing one
 * character the way MNIST was made, reading a line of characters, and a
 * generator of multi-digit test images.
 *
 * Preprocessing works on an "ink map" of the image at a bounded working
 * resolution (at most WORK_MAX_PIXELS; larger images are box-averaged down
 * first): grey, ink made light (MNIST polarity), the local paper level
 * subtracted, Otsu's threshold giving the ink mask, grey levels kept
 * between 0.4x the threshold and the ink level, and the mask's connected
 * components labelled. A character is a set of components (and optionally
 * a column range), rendered to 28x28 by render_char().
 */
#include "image.h"
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stb_image.h>
#include <stb_image_write.h>

#define WORK_MAX_PIXELS 4000000L
#define SPECK_FRACTION 0.03   /* components below this share of the largest are noise */
#define MIN_CONTRAST 32       /* below this the image is blank                        */
#define MIN_STROKE 2.0        /* stroke width in 28x28 pixels below which ink is thickened */
/* A piece w wide and h high gets log-probability SPLIT_SLOPE * (w/h - SPLIT_ASPECT)
 * in favour of a split (negative: against); pieces below MIN_SPLIT_ASPECT are
 * never cut. MNIST digits are 0.75 as wide as high on average, 1.05 at the
 * 95th percentile. */
#define SPLIT_SLOPE 4.0
#define SPLIT_ASPECT 1.1
#define SURE_ASPECT 1.5   /* below it, a piece read with SURE_P is never cut */
#define SURE_P 0.97
#define MIN_SPLIT_ASPECT 0.9

/* ----------------------------------------------------------------- loading */

static hcr_status read_all(const char *path, uint8_t **data, size_t *len)
{
    const int is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "standard input" : path;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) return hcr_fail(HCR_EIO, "cannot open '%s': %s", name, strerror(errno));
    size_t cap = 0, n = 0;
    uint8_t *buf = NULL;
    hcr_status s = HCR_OK;
    for (;;) {
        if (n == cap) {
            if (cap > (size_t)HCR_IMAGE_MAX_BYTES) {
                s = hcr_fail(HCR_EFORMAT, "'%s' is larger than %ld bytes, the limit for an image",
                             name, (long)HCR_IMAGE_MAX_BYTES);
                break;
            }
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > (size_t)HCR_IMAGE_MAX_BYTES + 1) ncap = (size_t)HCR_IMAGE_MAX_BYTES + 1;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                s = hcr_fail(HCR_ENOMEM, "out of memory reading '%s'", name);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) s = hcr_fail(HCR_EIO, "cannot read '%s': %s", name, strerror(errno));
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
    if (!path || !out) return hcr_fail(HCR_EINVAL, "hcr_image_load: bad arguments");
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
        return hcr_fail(HCR_ENOMEM, "out of memory for a %dx%d image", w, h);
    }
    img->width = w;
    img->height = h;
    *out = img;
    return HCR_OK;
}

hcr_status hcr_image_load_memory(const void *data, size_t len, const char *name, hcr_image **out)
{
    if (!out || (!data && len)) return hcr_fail(HCR_EINVAL, "hcr_image_load_memory: bad arguments");
    *out = NULL;
    if (!name) name = "image";
    if (len == 0) return hcr_fail(HCR_EFORMAT, "'%s' is empty", name);
    if (len > (size_t)HCR_IMAGE_MAX_BYTES)
        return hcr_fail(HCR_EFORMAT, "'%s' is larger than %ld bytes, the limit for an image", name,
                        (long)HCR_IMAGE_MAX_BYTES);
    int w, h, n;
    const uint8_t *b = data;
    if (len >= 24 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8) && !memcmp(b + 12, "IHDR", 4)) {
        /* stb_image refuses huge PNGs with a vague message: say it here. */
        uint32_t pw = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
        uint32_t ph = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
        if ((uint64_t)pw * ph > (uint64_t)HCR_IMAGE_MAX_PIXELS)
            return hcr_fail(HCR_EFORMAT,
                            "'%s' is %ux%u pixels, more than the limit of %ld pixels (50 megapixels)",
                            name, pw, ph, (long)HCR_IMAGE_MAX_PIXELS);
        if (pw == 0 || ph == 0) return hcr_fail(HCR_EFORMAT, "'%s' has zero size (%ux%u)", name, pw, ph);
    }
    if (!stbi_info_from_memory(data, (int)len, &w, &h, &n))
        return hcr_fail(HCR_EFORMAT,
                        "'%s' is not an image hcr can read (PNG, JPEG, BMP, GIF, PGM/PPM): %s", name,
                        stbi_failure_reason());
    if (w <= 0 || h <= 0) return hcr_fail(HCR_EFORMAT, "'%s' has zero size (%dx%d)", name, w, h);
    if ((long long)w * h > HCR_IMAGE_MAX_PIXELS)
        return hcr_fail(HCR_EFORMAT,
                        "'%s' is %dx%d pixels, more than the limit of %ld pixels (50 megapixels)",
                        name, w, h, (long)HCR_IMAGE_MAX_PIXELS);
    int w2, h2, n2;
    uint8_t *px = stbi_load_from_memory(data, (int)len, &w2, &h2, &n2, 0);
    if (!px)
        return hcr_fail(HCR_EFORMAT, "'%s' is corrupt or truncated: %s", name, stbi_failure_reason());
    if (w2 != w || h2 != h || n2 < 1 || n2 > 4) {
        stbi_image_free(px);
        return hcr_fail(HCR_EFORMAT, "'%s': the image data does not match its header", name);
    }
    hcr_image *img = NULL;
    hcr_status s = image_alloc(w, h, &img);
    if (s) {
        stbi_image_free(px);
        return s;
    }
    const size_t np = (size_t)w * h;
    const int has_alpha = n2 == 2 || n2 == 4;
    /* Luma, and the alpha-weighted mean luma of the opaque part. */
    double lsum = 0, asum = 0;
    int translucent = 0;
    for (size_t i = 0; i < np; i++) {
        const uint8_t *p = px + i * n2;
        int l = n2 >= 3 ? (299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000 : p[0];
        img->pixels[i] = (uint8_t)l;
        if (has_alpha) {
            int a = p[n2 - 1];
            if (a < 255) translucent = 1;
            lsum += (double)l * a;
            asum += a;
        }
    }
    if (translucent) {
        /* Composite over a background contrasting with the strokes. */
        const int bg = (asum > 0 && lsum / asum >= 128) ? 0 : 255;
        for (size_t i = 0; i < np; i++) {
            int a = px[i * n2 + n2 - 1];
            img->pixels[i] = (uint8_t)((img->pixels[i] * a + bg * (255 - a) + 127) / 255);
        }
    }
    stbi_image_free(px);
    *out = img;
    return HCR_OK;
}

hcr_status hcr_image_from_grey(int width, int height, const uint8_t *pixels, hcr_image **out)
{
    if (!out || !pixels || width <= 0 || height <= 0 ||
        (long long)width * height > HCR_IMAGE_MAX_PIXELS)
        return hcr_fail(HCR_EINVAL, "hcr_image_from_grey: bad arguments (%dx%d)", width, height);
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
        return hcr_fail(HCR_EINVAL, "hcr_image_write: bad arguments");
    const char *dot = strrchr(path, '.');
    int ok;
    if (dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")))
        ok = stbi_write_jpg(path, width, height, 1, pixels, 95);
    else
        ok = stbi_write_png(path, width, height, 1, pixels, width);
    if (!ok) return hcr_fail(HCR_EIO, "cannot write '%s'", path);
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

/* Label the 8-connected components of mask (nonzero lab on entry), fill
 * k->comps. */
static hcr_status label_components(ink_map *k, const uint8_t *mask)
{
    const int w = k->w, h = k->h;
    int cap = 1024, n = 0;
    int *parent = malloc(sizeof *parent * cap);
    if (!parent) return hcr_fail(HCR_ENOMEM, "out of memory labelling ink");
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
            if (nn == 0) {
                if (n == cap) {
                    if (cap > INT_MAX / 2) {
                        free(parent);
                        return hcr_fail(HCR_ENOMEM, "too many pieces of ink");
                    }
                    int *np = realloc(parent, sizeof *np * (size_t)cap * 2);
                    if (!np) {
                        free(parent);
                        return hcr_fail(HCR_ENOMEM, "out of memory labelling ink");
                    }
                    parent = np;
                    cap *= 2;
                }
                parent[n] = n;
                k->lab[i] = n++;
            } else {
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
                k->lab[i] = r;
            }
        }
    }
    /* Compact the roots to 1..ncomp. */
    int *map = calloc((size_t)n, sizeof *map);
    if (!map) {
        free(parent);
        return hcr_fail(HCR_ENOMEM, "out of memory labelling ink");
    }
    int nc = 0;
    for (int i = 1; i < n; i++) {
        int r = uf_find(parent, i);
        if (!map[r]) map[r] = ++nc;
        map[i] = map[r];
    }
    k->comps = calloc((size_t)nc + 1, sizeof *k->comps);
    if (!k->comps) {
        free(map);
        free(parent);
        return hcr_fail(HCR_ENOMEM, "out of memory labelling ink");
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
    free(parent);
    return HCR_OK;
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

hcr_status ink_prepare(const hcr_image *img, ink_map *k)
{
    memset(k, 0, sizeof *k);
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0)
        return hcr_fail(HCR_EINVAL, "no image");
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
    float *bgrid = NULL;
    k->v = malloc(np * sizeof *k->v);
    k->lab = malloc(np * sizeof *k->lab);
    hcr_status s = HCR_OK;
    if (!g || !k->v || !k->lab) {
        s = hcr_fail(HCR_ENOMEM, "out of memory preprocessing a %dx%d image", w, h);
        goto done;
    }
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
    /* Polarity: the ink is the side of the median with the longer tail. */
    long hist[256] = {0};
    for (size_t i = 0; i < np; i++) hist[g[i]]++;
    int med = hist_percentile(hist, (long)np, 0.5), plo = hist_percentile(hist, (long)np, 0.001),
        phi = hist_percentile(hist, (long)np, 0.999);
    k->inverted = (med - plo) > (phi - med);
    if (k->inverted)
        for (size_t i = 0; i < np; i++) g[i] = (uint8_t)(255 - g[i]);
    /* Paper level: the 10th percentile of blocks, the minimum over 3x3
     * blocks, interpolated bilinearly; subtracted. */
    int B = (w > h ? w : h) / 16;
    if (B < 4) B = 4;
    const int gw = (w + B - 1) / B, gh = (h + B - 1) / B;
    bgrid = malloc(sizeof *bgrid * 2 * (size_t)gw * gh);
    if (!bgrid) {
        s = hcr_fail(HCR_ENOMEM, "out of memory preprocessing");
        goto done;
    }
    float *pct = bgrid + (size_t)gw * gh;
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
    long fh[256] = {0};
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
    int hi = hist_percentile(fh, (long)np, 0.999);
    {
        int mx = 255;
        while (mx > 0 && !fh[mx]) mx--;
        if (hi < MIN_CONTRAST && mx >= 2 * MIN_CONTRAST) hi = mx; /* very little ink */
    }
    if (hi < MIN_CONTRAST) {
        s = hcr_fail(HCR_EFORMAT, "no ink found: the image is blank or has too little contrast");
        goto done;
    }
    int t = otsu(fh, (long)np);
    if (t < hi / 4) t = hi / 4;
    k->threshold = t;
    /* The ink level: the 90th percentile of the ink. */
    long ih[256] = {0}, in = 0;
    for (int i = t + 1; i < 256; i++) {
        ih[i] = fh[i];
        in += fh[i];
    }
    int level = in ? hist_percentile(ih, in, 0.9) : 255;
    const float lo = 0.4f * t;
    if (level <= lo + 1) level = (int)lo + 2;
    mask = malloc(np);
    if (!mask) {
        s = hcr_fail(HCR_ENOMEM, "out of memory preprocessing");
        goto done;
    }
    for (size_t i = 0; i < np; i++) {
        float d = k->v[i];
        mask[i] = d > t;
        float v = (d - lo) / (level - lo);
        k->v[i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
    s = label_components(k, mask);
    if (s) goto done;
    if (k->ncomp == 0) {
        s = hcr_fail(HCR_EFORMAT, "no ink found: the image is blank or has too little contrast");
        goto done;
    }
    long amax = 0;
    for (int c = 1; c <= k->ncomp; c++)
        if (k->comps[c].area > amax) amax = k->comps[c].area;
    for (int c = 1; c <= k->ncomp; c++)
        k->comps[c].keep = k->comps[c].area >= SPECK_FRACTION * amax && k->comps[c].area >= 2;
done:
    free(g);
    free(mask);
    free(bgrid);
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

/* A w x h float image (values 0..1, ink light) to 28x28: scale so the
 * longer side is 20, centre of mass at (14, 14). */
static hcr_status to_28(const float *buf, int w, int h, uint8_t out[28 * 28])
{
    const int L = w > h ? w : h;
    int ow = (int)lround((double)w * 20 / L), oh = (int)lround((double)h * 20 / L);
    if (ow < 1) ow = 1;
    if (oh < 1) oh = 1;
    float *tmp = malloc(sizeof *tmp * ((size_t)ow * h + (size_t)ow * oh));
    if (!tmp) return hcr_fail(HCR_ENOMEM, "out of memory scaling a character");
    float *small = tmp + (size_t)ow * h;
    resample_1d(buf, w, 1, w, h, tmp, ow, 1, ow);        /* rows    */
    resample_1d(tmp, h, ow, 1, ow, small, oh, ow, 1);    /* columns */
    double sum = 0, sx = 0, sy = 0;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            double v = small[y * ow + x];
            sum += v;
            sx += v * x;
            sy += v * y;
        }
    memset(out, 0, 28 * 28);
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

/* Separable max filter of radius r on a w x h image, in place. */
static hcr_status dilate(float *buf, int w, int h, int r)
{
    float *line = malloc(sizeof *line * (size_t)(w > h ? w : h));
    if (!line) return hcr_fail(HCR_ENOMEM, "out of memory");
    for (int y = 0; y < h; y++) {
        float *row = buf + (size_t)y * w;
        memcpy(line, row, sizeof *line * w);
        for (int x = 0; x < w; x++) {
            float m = 0;
            for (int d = -r; d <= r; d++)
                if (x + d >= 0 && x + d < w && line[x + d] > m) m = line[x + d];
            row[x] = m;
        }
    }
    for (int x = 0; x < w; x++) {
        for (int y = 0; y < h; y++) line[y] = buf[(size_t)y * w + x];
        for (int y = 0; y < h; y++) {
            float m = 0;
            for (int d = -r; d <= r; d++)
                if (y + d >= 0 && y + d < h && line[y + d] > m) m = line[y + d];
            buf[(size_t)y * w + x] = m;
        }
    }
    free(line);
    return HCR_OK;
}

hcr_status render_char(const ink_map *k, const int *group, int g, int xa, int xb,
                       uint8_t out[28 * 28], int box[4])
{
    const int w = k->w;
    if (xa < 0) xa = 0;
    if (xb > w) xb = w;
    /* Tight box of the group's labelled pixels in [xa, xb). */
    int x0 = w, y0 = k->h, x1 = 0, y1 = 0;
    long area = 0;
    for (int c = 1; c <= k->ncomp; c++) {
        const ink_comp *cp = &k->comps[c];
        if (group[c] != g || cp->x1 <= xa || cp->x0 >= xb) continue;
        int cx0 = cp->x0 > xa ? cp->x0 : xa, cx1 = cp->x1 < xb ? cp->x1 : xb;
        for (int y = cp->y0; y < cp->y1; y++)
            for (int x = cx0; x < cx1; x++)
                if (k->lab[(size_t)y * w + x] == c) {
                    if (x < x0) x0 = x;
                    if (x + 1 > x1) x1 = x + 1;
                    if (y < y0) y0 = y;
                    if (y + 1 > y1) y1 = y + 1;
                    area++;
                }
    }
    if (area == 0) return hcr_fail(HCR_EFORMAT, "no ink found in the character");
    int bw = x1 - x0, bh = y1 - y0;
    /* Stroke width ~ 2 * area / boundary; thicken thin strokes so they
     * come out about as wide as MNIST's after scaling. */
    long boundary = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            size_t i = (size_t)y * w + x;
            int l = k->lab[i];
            if (!l || group[l] != g) continue;
            int edge = 0;
            if (x == x0 || x + 1 == x1 || y == y0 || y + 1 == y1) edge = 1;
            else {
                int ls[4] = {k->lab[i - 1], k->lab[i + 1], k->lab[i - w], k->lab[i + w]};
                for (int j = 0; j < 4; j++)
                    if (!ls[j] || group[ls[j]] != g) edge = 1;
            }
            boundary += edge;
        }
    const double L = bw > bh ? bw : bh, stroke = boundary ? 2.0 * area / boundary : 1;
    int r = 0;
    if (stroke * 20 / L < MIN_STROKE) r = (int)ceil((MIN_STROKE * L / 20 - stroke) / 2);
    if (r > (int)(L / 8)) r = (int)(L / 8);
    const int pw = bw + 2 * r, ph = bh + 2 * r;
    float *buf = calloc((size_t)pw * ph, sizeof *buf);
    if (!buf) return hcr_fail(HCR_ENOMEM, "out of memory rendering a character");
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            size_t i = (size_t)y * w + x;
            int l = k->lab[i];
            if (l ? group[l] == g : 1) buf[(size_t)(y - y0 + r) * pw + (x - x0 + r)] = k->v[i];
        }
    hcr_status s = r ? dilate(buf, pw, ph, r) : HCR_OK;
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
    if (!img || !out) return hcr_fail(HCR_EINVAL, "hcr_image_to_mnist: bad arguments");
    ink_map k;
    hcr_status s = ink_prepare(img, &k);
    if (s) return s;
    int *group = malloc(sizeof *group * ((size_t)k.ncomp + 1));
    if (!group) {
        ink_free(&k);
        return hcr_fail(HCR_ENOMEM, "out of memory");
    }
    group[0] = -1;
    for (int c = 1; c <= k.ncomp; c++) group[c] = k.comps[c].keep ? 0 : -1;
    int box[4];
    s = render_char(&k, group, 0, 0, k.w, out, box);
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
    int x0, y0, x1, y1; /* working pixels */
    int g;              /* group id for render_char */
    int xa, xb;         /* column range */
} seg;

/* Merge piece q into piece p: q's components join p's group, and p's box
 * grows to cover both. */
static void merge_seg(seg *p, const seg *q, int *group, int ncomp)
{
    for (int c = 1; c <= ncomp; c++)
        if (group[c] == q->g) group[c] = p->g;
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

static double best_logp(const float *p, int nc)
{
    float m = 0;
    for (int i = 0; i < nc; i++)
        if (p[i] > m) m = p[i];
    return log(m > 1e-9f ? m : 1e-9f);
}

/* Try to cut segment s into two; on success fill a and b and return 1. */
static int try_split(hcr_model *m, const ink_map *k, const int *group, const seg *s, double bonus,
                     seg *a, seg *b, hcr_status *err)
{
    const int nc = hcr_model_num_classes(m);
    const int w = s->xb - s->xa;
    int step = w / 30;
    if (step < 1) step = 1;
    int lo = s->xa + w / 5, hi = s->xb - w / 5;
    int ncut = 0;
    for (int c = lo; c <= hi; c += step) ncut++;
    if (ncut == 0) return 0;
    uint8_t *px = malloc((size_t)(1 + 2 * ncut) * 784);
    float *pr = malloc(sizeof *pr * (size_t)(1 + 2 * ncut) * nc);
    char *valid = calloc((size_t)ncut, 1);
    int found = 0;
    if (!px || !pr || !valid) {
        *err = hcr_fail(HCR_ENOMEM, "out of memory splitting characters");
        goto done;
    }
    if ((*err = render_char(k, group, s->g, s->xa, s->xb, px, NULL))) goto done;
    int i = 0;
    for (int c = lo; c <= hi; c += step, i++) {
        valid[i] = render_char(k, group, s->g, s->xa, c, px + (size_t)(1 + 2 * i) * 784, NULL) == HCR_OK &&
                   render_char(k, group, s->g, c, s->xb, px + (size_t)(2 + 2 * i) * 784, NULL) == HCR_OK;
    }
    if ((*err = hcr_model_predict(m, px, 1 + 2 * ncut, pr))) goto done;
    double whole = best_logp(pr, nc), best = -1e30;
    if (bonus < SPLIT_SLOPE * (SURE_ASPECT - SPLIT_ASPECT) && whole >= log(SURE_P)) goto done;
    int bestc = -1;
    i = 0;
    for (int c = lo; c <= hi; c += step, i++) {
        if (!valid[i]) continue;
        double sc = best_logp(pr + (size_t)(1 + 2 * i) * nc, nc) +
                    best_logp(pr + (size_t)(2 + 2 * i) * nc, nc);
        if (sc > best) {
            best = sc;
            bestc = c;
        }
    }
    if (bestc >= 0 && best + bonus > whole) {
        *a = *s;
        *b = *s;
        a->xb = bestc;
        b->xa = bestc;
        a->x1 = bestc;
        b->x0 = bestc;
        found = 1;
    }
done:
    free(px);
    free(pr);
    free(valid);
    hcr_clear_error();
    return found;
}

hcr_status hcr_read_line(hcr_model *m, const hcr_image *img, hcr_line *out)
{
    if (!m || !img || !out) return hcr_fail(HCR_EINVAL, "hcr_read_line: bad arguments");
    memset(out, 0, sizeof *out);
    if (hcr_model_input_rows(m) != 28 || hcr_model_input_cols(m) != 28)
        return hcr_fail(HCR_EINVAL, "the model takes %dx%d images; reading needs 28x28",
                        hcr_model_input_rows(m), hcr_model_input_cols(m));
    const int nc = hcr_model_num_classes(m);
    ink_map k;
    hcr_status s = ink_prepare(img, &k);
    if (s) return s;
    int *group = malloc(sizeof *group * ((size_t)k.ncomp + 1));
    seg *segs = malloc(sizeof *segs * ((size_t)k.ncomp + 1));
    uint8_t *px = NULL;
    float *pr = NULL;
    int n = 0;
    if (!group || !segs) {
        s = hcr_fail(HCR_ENOMEM, "out of memory reading a line");
        goto done;
    }
    group[0] = -1;
    for (int c = 1; c <= k.ncomp; c++) {
        group[c] = -1;
        if (!k.comps[c].keep) continue;
        group[c] = n;
        segs[n] = (seg){k.comps[c].x0, k.comps[c].y0, k.comps[c].x1, k.comps[c].y1, n, 0, 0};
        n++;
    }
    if (n > 1000) {
        s = hcr_fail(HCR_EFORMAT, "%d separate pieces of ink: this does not look like a line of characters", n);
        goto done;
    }
    /* Line height: the tallest piece. */
    int H = 1;
    for (int i = 0; i < n; i++)
        if (segs[i].y1 - segs[i].y0 > H) H = segs[i].y1 - segs[i].y0;
    /* Merge pieces lying over each other. */
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < n && !changed; i++)
            for (int j = i + 1; j < n && !changed; j++) {
                seg *p = &segs[i], *q = &segs[j];
                int ov = (p->x1 < q->x1 ? p->x1 : q->x1) - (p->x0 > q->x0 ? p->x0 : q->x0);
                int wp = p->x1 - p->x0, wq = q->x1 - q->x0;
                int mw = (p->x1 > q->x1 ? p->x1 : q->x1) - (p->x0 < q->x0 ? p->x0 : q->x0);
                if (ov * 10 < (wp < wq ? wp : wq) * 7 || mw > H * 11 / 10) continue;
                merge_seg(p, q, group, k.ncomp);
                segs[j] = segs[--n];
                changed = 1;
            }
    }
    /* Flat pieces (the bar of a broken 5, a dot) join the nearest piece. */
    for (int changed = 1; changed && n > 1;) {
        changed = 0;
        for (int i = 0; i < n && !changed; i++) {
            seg *q = &segs[i];
            if ((q->y1 - q->y0) * 20 >= H * 9) continue;
            int best = -1, bd = INT_MAX;
            for (int j = 0; j < n; j++) {
                if (j == i) continue;
                const seg *p = &segs[j];
                int d = p->x0 > q->x1 ? p->x0 - q->x1 : q->x0 > p->x1 ? q->x0 - p->x1 : 0;
                if (d < bd || (d == bd && best >= 0 && p->y1 - p->y0 > segs[best].y1 - segs[best].y0)) {
                    bd = d;
                    best = j;
                }
            }
            if (best < 0 || bd > H / 2) continue;
            seg *p = &segs[best];
            merge_seg(p, q, group, k.ncomp);
            segs[i] = segs[--n];
            changed = 1;
        }
    }
    for (int i = 0; i < n; i++) {
        segs[i].xa = segs[i].x0;
        segs[i].xb = segs[i].x1;
    }
    qsort(segs, (size_t)n, sizeof *segs, cmp_seg);
    /* Split pieces much wider than a character (up to 3 cuts each). */
    for (int i = 0; i < n; i++) {
        seg *p = &segs[i];
        int sw = p->xb - p->xa, sh = p->y1 - p->y0;
        double aspect = (double)sw / (sh > 0.75 * H ? sh : 0.75 * H);
        if (aspect < MIN_SPLIT_ASPECT) continue;
        seg a, b;
        if (!try_split(m, &k, group, p, SPLIT_SLOPE * (aspect - SPLIT_ASPECT), &a, &b, &s)) {
            if (s) goto done;
            continue;
        }
        seg *ns = realloc(segs, sizeof *segs * ((size_t)n + 1));
        if (!ns) {
            s = hcr_fail(HCR_ENOMEM, "out of memory reading a line");
            goto done;
        }
        segs = ns;
        memmove(&segs[i + 2], &segs[i + 1], sizeof *segs * (size_t)(n - i - 1));
        segs[i] = a;
        segs[i + 1] = b;
        n++;
        i--; /* look at the left half again */
    }
    px = malloc((size_t)n * 784 + 1);
    pr = malloc(sizeof *pr * ((size_t)n * nc + 1));
    out->chars = calloc((size_t)n + 1, sizeof *out->chars);
    if (!px || !pr || !out->chars) {
        s = hcr_fail(HCR_ENOMEM, "out of memory reading a line");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        int box[4];
        if ((s = render_char(&k, group, segs[i].g, segs[i].xa, segs[i].xb, px + (size_t)i * 784, box)))
            goto done;
        hcr_char *ch = &out->chars[i];
        ch->x = box[0];
        ch->y = box[1];
        ch->w = box[2] < img->width - box[0] ? box[2] : img->width - box[0];
        ch->h = box[3] < img->height - box[1] ? box[3] : img->height - box[1];
        memcpy(ch->pixels, px + (size_t)i * 784, 784);
    }
    if (n && (s = hcr_model_predict(m, px, n, pr))) goto done;
    size_t tl = 1;
    for (int i = 0; i < n; i++) {
        hcr_char *ch = &out->chars[i];
        ch->probs = malloc(sizeof *ch->probs * nc);
        if (!ch->probs) {
            s = hcr_fail(HCR_ENOMEM, "out of memory reading a line");
            goto done;
        }
        out->count = i + 1;
        memcpy(ch->probs, pr + (size_t)i * nc, sizeof *ch->probs * nc);
        ch->cls = 0;
        for (int c = 1; c < nc; c++)
            if (ch->probs[c] > ch->probs[ch->cls]) ch->cls = c;
        ch->confidence = ch->probs[ch->cls];
        tl += strlen(hcr_model_class_name(m, ch->cls));
    }
    out->count = n;
    out->text = malloc(tl);
    if (!out->text) {
        s = hcr_fail(HCR_ENOMEM, "out of memory reading a line");
        goto done;
    }
    out->text[0] = '\0';
    for (int i = 0; i < n; i++) strcat(out->text, hcr_model_class_name(m, out->chars[i].cls));
done:
    free(px);
    free(pr);
    free(group);
    free(segs);
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

hcr_status hcr_compose_number(const hcr_dataset *digits, int ndigits, int touching, uint64_t seed,
                              hcr_image **out, char *text, size_t n)
{
    if (!digits || !out || !text || ndigits < 1 || ndigits > 64 || n < (size_t)ndigits + 1 ||
        digits->count < 1 || digits->rows < 4 || digits->cols < 4 || digits->rows > 256 ||
        digits->cols > 256 || (touching && ndigits < 2))
        return hcr_fail(HCR_EINVAL, "hcr_compose_number: bad arguments");
    *out = NULL;
    hcr_rng rng;
    hcr_rng_seed(&rng, seed);
    const int R = digits->rows, C = digits->cols, M = 8;
    glyph *gl = calloc((size_t)ndigits, sizeof *gl);
    float *canvas = NULL;
    hcr_status s = HCR_OK;
    if (!gl) return hcr_fail(HCR_ENOMEM, "out of memory");
    int maxh = 0, sumw = 0;
    for (int d = 0; d < ndigits; d++) {
        int idx = (int)hcr_rng_below(&rng, (uint32_t)digits->count);
        const uint8_t *p = digits->pixels + (size_t)idx * R * C;
        const char *nm = NULL;
        int lab = digits->labels[idx];
        (void)nm;
        text[d] = lab < 10 ? (char)('0' + lab) : (char)('a' + lab - 10);
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
        double sc = 0.85 + 0.3 * hcr_rng_uniform(&rng);
        int gw = (int)lround(bw * sc), gh = (int)lround(bh * sc);
        if (gw < 1) gw = 1;
        if (gh < 1) gh = 1;
        float *src = malloc(sizeof *src * ((size_t)bw * bh + (size_t)gw * bh));
        gl[d].v = malloc(sizeof *gl[d].v * (size_t)gw * gh);
        if (!src || !gl[d].v) {
            free(src);
            s = hcr_fail(HCR_ENOMEM, "out of memory");
            goto done;
        }
        for (int y = 0; y < bh; y++)
            for (int x = 0; x < bw; x++) src[y * bw + x] = p[(y + y0) * C + x + x0] / 255.0f;
        float *tmp = src + (size_t)bw * bh;
        resample_1d(src, bw, 1, bw, bh, tmp, gw, 1, gw);
        resample_1d(tmp, bh, gw, 1, gw, gl[d].v, gh, gw, 1);
        free(src);
        gl[d].w = gw;
        gl[d].h = gh;
        /* Bottom-aligned on a baseline, with jitter. */
        gl[d].y = -gh + (int)hcr_rng_below(&rng, 7) - 3;
        if (gh > maxh) maxh = gh;
        sumw += gw;
    }
    text[ndigits] = '\0';
    const int pair = touching ? 1 + (int)hcr_rng_below(&rng, (uint32_t)(ndigits - 1)) : -1;
    const int ch = maxh + 6 + 2 * M, cw = sumw + 8 * ndigits + 2 * M;
    const int base = M + 3 + maxh;
    canvas = calloc((size_t)cw * ch, sizeof *canvas);
    if (!canvas) {
        s = hcr_fail(HCR_ENOMEM, "out of memory");
        goto done;
    }
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
            x = right - 2 + (int)hcr_rng_below(&rng, 8); /* gap -2..5 */
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
    int width = right + M < cw ? right + M : cw;
    hcr_image *img = NULL;
    if ((s = image_alloc(width, ch, &img))) goto done;
    for (int y = 0; y < ch; y++)
        for (int x = 0; x < width; x++) {
            long v = lround(canvas[(size_t)y * cw + x] * 255);
            img->pixels[(size_t)y * width + x] = (uint8_t)(255 - (v > 255 ? 255 : v < 0 ? 0 : v));
        }
    *out = img;
done:
    for (int d = 0; d < ndigits; d++) free(gl[d].v);
    free(gl);
    free(canvas);
    return s;
}
