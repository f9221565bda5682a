/*
 * report.c - the pictures of a trained model and one HTML page holding
 * them: learning curves (accuracy, loss), sample test images, the confusion
 * matrix as an annotated heat map, the most confident mistakes, and
 * report.html with all of it plus the tables (model, recipe, per-class
 * scores, history, timings, data checksums).
 *
 * Everything is drawn with cairo: lines, text (its "toy" text API with the
 * DejaVu Sans font from fonts-dejavu-core, found through fontconfig) and
 * PNG encoding. docs/report.md says why.
 *
 * Every file is written under a temporary name in the report folder and
 * renamed, so a final name never holds a half-written file.
 */
#include "report/report.h"

#include "nn/metrics.h"

#include <cairo.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

const char *const report_png_names[REPORT_NUM_PNG] = {
    "accuracy.png", "loss.png", "samples.png", "confusion.png", "misclassified.png",
};
enum { PNG_ACCURACY, PNG_LOSS, PNG_SAMPLES, PNG_CONFUSION, PNG_MISCLASSIFIED };

#define FONT "DejaVu Sans"

/* Colours: picked to stay apart in grey-scale too (dark blue vs. light
 * orange), and the lines differ in style and markers as well. */
#define C_TEXT 0x1a1a1a
#define C_MUTED 0x555555
#define C_GRID 0xdedede
#define C_AXIS 0x333333
#define C_TRAIN 0x1b4f8a
#define C_VAL 0xe08214
#define C_WRONG 0xc0001a

/* ------------------------------------------------------------ small tools */

void report_confusion(const uint8_t *labels, const int *predicted, int n, int k, int *confusion)
{
    for (int i = 0; i < n; i++) {
        int t = labels[i], p = predicted[i];
        if (t < k && p >= 0 && p < k) confusion[t * k + p]++;
    }
}

size_t report_base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* A growing byte buffer; once an allocation fails it stays failed. */
typedef struct rbuf {
    char *p;
    size_t len, cap;
    bool oom;
} rbuf;

static void rb_add(rbuf *b, const void *d, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->len + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void rb_str(rbuf *b, const char *s) { rb_add(b, s, strlen(s)); }

static void rb_fmt(rbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rb_fmt(rbuf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        rb_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    rb_add(b, big, (size_t)n);
    free(big);
}

/* Text for HTML: & < > " ' escaped. */
static void rb_esc(rbuf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': rb_str(b, "&amp;"); break;
        case '<': rb_str(b, "&lt;"); break;
        case '>': rb_str(b, "&gt;"); break;
        case '"': rb_str(b, "&quot;"); break;
        case '\'': rb_str(b, "&#39;"); break;
        default: rb_add(b, s, 1);
        }
    }
}

/* 1234567 -> "1,234,567" */
static void thousands(char *buf, size_t n, long v)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%ld", v < 0 ? -v : v);
    size_t len = strlen(raw), o = 0;
    if (v < 0 && o + 1 < n) buf[o++] = '-';
    for (size_t i = 0; i < len && o + 1 < n; i++) {
        if (i && (len - i) % 3 == 0 && o + 1 < n) buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* "95.3s", "4m 12s", "1h 03m" */
static void duration(char *buf, size_t n, double s)
{
    if (s < 60)
        snprintf(buf, n, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm %02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, n, "%dh %02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

/* ---------------------------------------------------------------- drawing */

typedef struct canvas {
    cairo_surface_t *s;
    cairo_t *cr;
} canvas;

static void rgb(cairo_t *cr, unsigned hex)
{
    cairo_set_source_rgb(cr, ((hex >> 16) & 255) / 255.0, ((hex >> 8) & 255) / 255.0,
                         (hex & 255) / 255.0);
}

static bool canvas_open(canvas *c, int w, int h)
{
    c->s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    c->cr = cairo_create(c->s);
    if (cairo_status(c->cr) != CAIRO_STATUS_SUCCESS) return false;
    cairo_set_source_rgb(c->cr, 1, 1, 1);
    cairo_paint(c->cr);
    return true;
}

static cairo_status_t png_sink(void *closure, const unsigned char *data, unsigned int len)
{
    rbuf *b = closure;
    rb_add(b, data, len);
    return b->oom ? CAIRO_STATUS_NO_MEMORY : CAIRO_STATUS_SUCCESS;
}

/* Encode the canvas as PNG into out and free the canvas. */
static hcr_status canvas_finish(canvas *c, rbuf *out, const char *name)
{
    cairo_status_t st = cairo_status(c->cr);
    cairo_destroy(c->cr);
    cairo_surface_flush(c->s);
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_write_to_png_stream(c->s, png_sink, out);
    cairo_surface_destroy(c->s);
    c->cr = NULL;
    c->s = NULL;
    if (st != CAIRO_STATUS_SUCCESS || out->oom)
        return hcr__fail(out->oom ? HCR_ENOMEM : HCR_EIO, "drawing %s: %s", name,
                        out->oom ? "out of memory" : cairo_status_to_string(st));
    return HCR_OK;
}

static void font(cairo_t *cr, double size, bool bold)
{
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_w(cairo_t *cr, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* Draw s anchored at (x, y): ax 0 left, 0.5 centre, 1 right; ay 0 top of the
 * capitals, 0.5 their middle, 1 the baseline. */
static void text(cairo_t *cr, double x, double y, const char *s, double ax, double ay)
{
    cairo_text_extents_t cap;
    cairo_text_extents(cr, "H", &cap);
    cairo_move_to(cr, x - ax * text_w(cr, s), y + cap.height * (1 - ay));
    cairo_show_text(cr, s);
}

/* A picture's title, centred at the top of a canvas W pixels wide. */
static void draw_title(cairo_t *cr, int W, const char *title)
{
    rgb(cr, C_TEXT);
    font(cr, 21, true);
    text(cr, W / 2.0, 20, title, 0.5, 0);
}

/* Shrink the font until s fits in width w (not below min); returns the size. */
static double fit_font(cairo_t *cr, const char *s, double w, double size, double min, bool bold)
{
    font(cr, size, bold);
    while (size > min && text_w(cr, s) > w) {
        size -= 0.5;
        font(cr, size, bold);
    }
    return size;
}

/* A step of 1, 2 or 5 times a power of ten giving about `target` ticks. */
static double nice_step(double range, int target)
{
    if (!(range > 0)) return 1;
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return nf * mag;
}

static int step_decimals(double step)
{
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 6 ? 6 : d;
}

/* One MNIST image at (x, y), `scale` screen pixels per image pixel, dark
 * ink on white (it prints well), with a thin frame. */
static void draw_digit(cairo_t *cr, const uint8_t *px, int rows, int cols, double x, double y,
                       int scale)
{
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, cols, rows);
    if (cairo_surface_status(img) == CAIRO_STATUS_SUCCESS) {
        cairo_surface_flush(img);
        unsigned char *data = cairo_image_surface_get_data(img);
        int stride = cairo_image_surface_get_stride(img);
        for (int r = 0; r < rows; r++) {
            uint32_t *row = (uint32_t *)(void *)(data + (size_t)r * stride);
            for (int c = 0; c < cols; c++) {
                uint32_t g = 255u - px[r * cols + c];
                row[c] = g << 16 | g << 8 | g;
            }
        }
        cairo_surface_mark_dirty(img);
        cairo_save(cr);
        cairo_translate(cr, x, y);
        cairo_scale(cr, scale, scale);
        cairo_set_source_surface(cr, img, 0, 0);
        cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
        cairo_rectangle(cr, 0, 0, cols, rows);
        cairo_fill(cr);
        cairo_restore(cr);
    }
    cairo_surface_destroy(img);
    rgb(cr, 0xbbbbbb);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x - 0.5, y - 0.5, cols * scale + 1, rows * scale + 1);
    cairo_stroke(cr);
}

/* ------------------------------------------------------------ the curves */

static void marker(cairo_t *cr, double x, double y, bool square, unsigned colour)
{
    if (square) {
        cairo_rectangle(cr, x - 4.5, y - 4.5, 9, 9);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_fill_preserve(cr);
        rgb(cr, colour);
        cairo_set_line_width(cr, 2);
        cairo_stroke(cr);
    } else {
        cairo_arc(cr, x, y, 4.8, 0, 2 * M_PI);
        rgb(cr, colour);
        cairo_fill(cr);
    }
}

static void line_style(cairo_t *cr, bool dashed, unsigned colour)
{
    static const double dash[] = {9, 5};
    rgb(cr, colour);
    cairo_set_line_width(cr, 2.5);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_dash(cr, dashed ? dash : NULL, dashed ? 2 : 0, 0);
}

/* The legend sits above the plot, where it can never hide a line. */
static void draw_legend(cairo_t *cr, int W, bool has_val)
{
    const char *lab[2] = {"Training", "Validation"};
    int items = has_val ? 2 : 1;
    font(cr, 15, false);
    double total = 0;
    for (int i = 0; i < items; i++) total += 46 + 8 + text_w(cr, lab[i]) + (i ? 28 : 0);
    double x = (W - total) / 2, y = 62;
    for (int i = 0; i < items; i++) {
        if (i) x += 28;
        line_style(cr, i == 1, i ? C_VAL : C_TRAIN);
        cairo_move_to(cr, x, y);
        cairo_line_to(cr, x + 46, y);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        marker(cr, x + 23, y, i == 1, i ? C_VAL : C_TRAIN);
        rgb(cr, C_TEXT);
        font(cr, 15, false);
        text(cr, x + 54, y, lab[i], 0, 0.5);
        x += 54 + text_w(cr, lab[i]);
    }
}

/* Where a curves picture's plot lies on the canvas and what it shows. */
typedef struct plot {
    double L, R, T, B; /* the frame, in canvas pixels        */
    double x0, x1;     /* the epochs at its left and right   */
    double y0, y1;     /* the values at its bottom and top   */
    double ystep;      /* between value ticks                */
    int ydec;          /* decimals of the value tick labels  */
} plot;

static double plot_x(const plot *p, double e) { return p->L + (e - p->x0) / (p->x1 - p->x0) * (p->R - p->L); }
static double plot_y(const plot *p, double v) { return p->B - (v - p->y0) / (p->y1 - p->y0) * (p->B - p->T); }

/* A value tick's label; a tick at zero reads 0, never -0.000. */
static void tick_label(char *buf, size_t n, const plot *p, double v)
{
    snprintf(buf, n, "%.*f", p->ydec, fabs(v) < p->ystep * 1e-6 ? 0.0 : v);
}

/* The value range of both series, padded by 6%, and its ticks. */
static void plot_values(plot *p, int n, const double *train, const double *val)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (isfinite(train[i])) lo = fmin(lo, train[i]), hi = fmax(hi, train[i]);
        if (val && isfinite(val[i])) lo = fmin(lo, val[i]), hi = fmax(hi, val[i]);
    }
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-9) {
        double d = fmax(fabs(hi) * 0.05, 0.01);
        lo -= d;
        hi += d;
    }
    double pad = (hi - lo) * 0.06;
    p->y0 = lo - pad;
    p->y1 = hi + pad;
    p->ystep = nice_step(p->y1 - p->y0, 6);
    p->ydec = step_decimals(p->ystep);
}

/* The frame, leaving room on the left for the widest value label, and
 * the epochs 1..n with a little space on either side. */
static void plot_frame(cairo_t *cr, plot *p, int W, int H, int n)
{
    font(cr, 14, false);
    double tickw = 0;
    char buf[64];
    for (double v = ceil(p->y0 / p->ystep) * p->ystep; v <= p->y1 + p->ystep * 1e-9; v += p->ystep) {
        tick_label(buf, sizeof buf, p, v);
        tickw = fmax(tickw, text_w(cr, buf));
    }
    p->L = 24 + 20 + 14 + tickw + 10;
    p->R = W - 30;
    p->T = 88;
    p->B = H - 72;
    if (n <= 1) {
        p->x0 = 0.5;
        p->x1 = 1.5;
    } else {
        double pad = fmax((n - 1) * 0.04, 0.25);
        p->x0 = 1 - pad;
        p->x1 = n + pad;
    }
}

/* Grid lines, ticks and their labels on both axes, and the frame. */
static void draw_plot_grid(cairo_t *cr, const plot *p, int n)
{
    const double L = p->L, R = p->R, T = p->T, B = p->B;
    char buf[64];
    cairo_set_line_width(cr, 1);
    for (double v = ceil(p->y0 / p->ystep) * p->ystep; v <= p->y1 + p->ystep * 1e-9; v += p->ystep) {
        double y = floor(plot_y(p, v)) + 0.5;
        rgb(cr, C_GRID);
        cairo_move_to(cr, L, y);
        cairo_line_to(cr, R, y);
        cairo_stroke(cr);
        rgb(cr, C_AXIS);
        cairo_move_to(cr, L - 6, y);
        cairo_line_to(cr, L, y);
        cairo_stroke(cr);
        tick_label(buf, sizeof buf, p, v);
        rgb(cr, C_TEXT);
        font(cr, 14, false);
        text(cr, L - 10, y, buf, 1, 0.5);
    }
    int xstep = (int)fmax(1, round(nice_step(n > 1 ? n - 1 : 1, 10)));
    for (int e = 1; e <= (n > 1 ? n : 1); e += xstep) {
        double x = floor(plot_x(p, e)) + 0.5;
        rgb(cr, C_GRID);
        cairo_move_to(cr, x, T);
        cairo_line_to(cr, x, B);
        cairo_stroke(cr);
        rgb(cr, C_AXIS);
        cairo_move_to(cr, x, B);
        cairo_line_to(cr, x, B + 6);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%d", e);
        rgb(cr, C_TEXT);
        font(cr, 14, false);
        text(cr, x, B + 12, buf, 0.5, 0);
    }
    rgb(cr, C_AXIS);
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, floor(L) + 0.5, floor(T) + 0.5, floor(R - L), floor(B - T));
    cairo_stroke(cr);
}

/* "Epoch" below the plot, the value's name up its left side. */
static void draw_axis_titles(cairo_t *cr, const plot *p, int H, const char *ylabel)
{
    rgb(cr, C_TEXT);
    font(cr, 16, false);
    text(cr, (p->L + p->R) / 2, H - 22, "Epoch", 0.5, 1);
    cairo_save(cr);
    cairo_translate(cr, 24, (p->T + p->B) / 2);
    cairo_rotate(cr, -M_PI / 2);
    text(cr, 0, 0, ylabel, 0.5, 0.5);
    cairo_restore(cr);
}

/* One series: its line, clipped to the plot, then the markers on top. */
static void draw_series(cairo_t *cr, const plot *p, int n, const double *v, bool dashed,
                        unsigned colour)
{
    cairo_save(cr);
    cairo_rectangle(cr, p->L, p->T, p->R - p->L, p->B - p->T);
    cairo_clip(cr);
    line_style(cr, dashed, colour);
    bool pen_down = false; /* a missing value breaks the line */
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            pen_down = false;
        } else if (!pen_down) {
            cairo_move_to(cr, plot_x(p, i + 1), plot_y(p, v[i]));
            pen_down = true;
        } else {
            cairo_line_to(cr, plot_x(p, i + 1), plot_y(p, v[i]));
        }
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    /* Markers for every epoch up to 30, then about 30 of them. */
    int every = n > 30 ? (n + 29) / 30 : 1;
    for (int i = 0; i < n; i += every)
        if (isfinite(v[i])) marker(cr, plot_x(p, i + 1), plot_y(p, v[i]), dashed, colour);
    cairo_restore(cr);
}

/* Training (and validation, when val is not NULL) values per epoch. */
static hcr_status draw_curves(rbuf *out, const char *name, const char *title, const char *ylabel,
                              int n, const double *train, const double *val)
{
    const int W = 900, H = 560;
    canvas c;
    if (!canvas_open(&c, W, H)) return canvas_finish(&c, out, name);
    cairo_t *cr = c.cr;

    draw_title(cr, W, title);
    draw_legend(cr, W, val != NULL);
    plot p;
    plot_values(&p, n, train, val);
    plot_frame(cr, &p, W, H, n);
    draw_plot_grid(cr, &p, n);
    draw_axis_titles(cr, &p, H, ylabel);
    if (n == 0) {
        font(cr, 16, false);
        rgb(cr, C_MUTED);
        text(cr, (p.L + p.R) / 2, (p.T + p.B) / 2, "No finished epochs", 0.5, 0.5);
    }
    draw_series(cr, &p, n, train, false, C_TRAIN);
    if (val) draw_series(cr, &p, n, val, true, C_VAL);
    return canvas_finish(&c, out, name);
}

/* --------------------------------------------------------- image grids */

typedef struct grid_item {
    int index;        /* image in the test set */
    int pred;         /* predicted class       */
    float confidence; /* probability of pred   */
} grid_item;

/* A grid of digits, each with "true X", "pred Y" (red, and framed in red,
 * when wrong) and optionally the confidence. */
static hcr_status draw_grid(rbuf *out, const char *name, const char *title, const char *subtitle,
                            const hcr_model *m, const hcr_dataset *ds, const grid_item *items,
                            int count, bool show_conf)
{
    const int cols_n = 8, scale = 3;
    const int iw = ds->cols * scale, ih = ds->rows * scale;
    const int cw = iw + 30, ch = ih + (show_conf ? 72 : 54);
    const int rows_n = count > 0 ? (count + cols_n - 1) / cols_n : 1;
    const int margin = 24, top = 82;
    const int W = 2 * margin + cols_n * cw, H = top + rows_n * ch + 10;
    canvas c;
    if (!canvas_open(&c, W, H)) return canvas_finish(&c, out, name);
    cairo_t *cr = c.cr;
    draw_title(cr, W, title);
    rgb(cr, C_MUTED);
    fit_font(cr, subtitle, W - 2 * margin, 15, 10, false);
    text(cr, W / 2.0, 52, subtitle, 0.5, 0);
    if (count == 0) {
        font(cr, 16, false);
        text(cr, W / 2.0, top + ch / 2.0, "None", 0.5, 0.5);
    }
    const size_t sz = (size_t)ds->rows * ds->cols;
    char buf[128];
    for (int i = 0; i < count; i++) {
        const grid_item *it = &items[i];
        int label = ds->labels[it->index];
        bool wrong = it->pred != label;
        double x = margin + (i % cols_n) * cw + (cw - iw) / 2.0;
        double y = top + (i / cols_n) * ch;
        draw_digit(cr, ds->pixels + (size_t)it->index * sz, ds->rows, ds->cols, x, y, scale);
        if (wrong) {
            rgb(cr, C_WRONG);
            cairo_set_line_width(cr, 3);
            cairo_rectangle(cr, x - 2.5, y - 2.5, iw + 5, ih + 5);
            cairo_stroke(cr);
        }
        double cx = x + iw / 2.0, ty = y + ih + 10;
        snprintf(buf, sizeof buf, "true %s", hcr_model_class_name(m, label));
        rgb(cr, C_TEXT);
        fit_font(cr, buf, cw - 6, 15, 9, false);
        text(cr, cx, ty, buf, 0.5, 0);
        snprintf(buf, sizeof buf, "pred %s", hcr_model_class_name(m, it->pred));
        rgb(cr, wrong ? C_WRONG : C_MUTED);
        fit_font(cr, buf, cw - 6, 15, 9, wrong);
        text(cr, cx, ty + 20, buf, 0.5, 0);
        if (show_conf) {
            snprintf(buf, sizeof buf, "%.1f%% sure", 100.0 * it->confidence);
            rgb(cr, C_MUTED);
            fit_font(cr, buf, cw - 6, 14, 9, false);
            text(cr, cx, ty + 40, buf, 0.5, 0);
        }
    }
    return canvas_finish(&c, out, name);
}

/* ------------------------------------------------------------ heat map */

/* seaborn/matplotlib "Blues": white to dark blue, lightness falling
 * steadily, so it reads the same in grey-scale. */
static void blues(double t, double *r, double *g, double *b)
{
    static const unsigned stops[] = {0xf7fbff, 0xdeebf7, 0xc6dbef, 0x9ecae1, 0x6baed6,
                                     0x4292c6, 0x2171b5, 0x08519c, 0x08306b};
    const int ns = (int)(sizeof stops / sizeof stops[0]);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double f = t * (ns - 1);
    int i = (int)f;
    if (i >= ns - 1) i = ns - 2;
    f -= i;
    unsigned a = stops[i], z = stops[i + 1];
    *r = (((a >> 16) & 255) * (1 - f) + ((z >> 16) & 255) * f) / 255;
    *g = (((a >> 8) & 255) * (1 - f) + ((z >> 8) & 255) * f) / 255;
    *b = ((a & 255) * (1 - f) + (z & 255) * f) / 255;
}

/* The confusion picture's layout, which the class names and the largest
 * count decide. */
typedef struct heat_layout {
    int cell;          /* side of a cell, pixels                        */
    int label_step;    /* every label_step-th class name is written     */
    double lf;         /* font size of the class names                  */
    double name_w;     /* the widest class name                         */
    int maxc;          /* the largest count (at least 1)                */
    double cstep;      /* between the colour bar's ticks                */
    double bar_text_w; /* the widest colour bar label                   */
    bool rotate_x;     /* the names below the matrix stand upright      */
    double gx, gy, gs; /* the matrix's top-left corner and its side     */
    double xlab_h;     /* the height of the names below it              */
} heat_layout;

static void heat_measure(heat_layout *l, const hcr_model *m, const int *conf, int k)
{
    /* Cells shrink with the number of classes, down to 16 px. */
    int cell = k <= 12 ? 60 : (int)fmin(60, fmax(16, floor(1150.0 / k)));
    /* Beyond ~200 classes the cells get smaller still and only every
     * label_step-th name is written, so the picture stays drawable. */
    if (k * cell > 3200) cell = 3200 / k > 1 ? 3200 / k : 1;
    l->cell = cell;
    l->label_step = cell >= 14 ? 1 : (14 + cell - 1) / cell;
    l->lf = fmin(15, cell * 0.8);
    if (l->lf < 11) l->lf = 11;

    /* Measure the class names to place the axes. */
    cairo_surface_t *probe_s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    cairo_t *probe = cairo_create(probe_s);
    font(probe, l->lf, false);
    l->name_w = 0;
    for (int i = 0; i < k; i++) l->name_w = fmax(l->name_w, text_w(probe, hcr_model_class_name(m, i)));
    l->maxc = 1;
    for (int i = 0; i < k * k; i++) l->maxc = conf[i] > l->maxc ? conf[i] : l->maxc;
    l->cstep = fmax(1, round(nice_step(l->maxc, 5)));
    char buf[32];
    font(probe, 14, false);
    l->bar_text_w = 0;
    for (double v = 0; v <= l->maxc; v += l->cstep) {
        thousands(buf, sizeof buf, (long)v);
        l->bar_text_w = fmax(l->bar_text_w, text_w(probe, buf));
    }
    cairo_destroy(probe);
    cairo_surface_destroy(probe_s);

    l->rotate_x = l->name_w > cell - 4;
    l->gx = 20 + 20 + 14 + l->name_w + 10;
    l->gy = 92;
    l->gs = (double)k * cell;
    l->xlab_h = l->rotate_x ? l->name_w + 12 : l->lf + 12;
}

/* Cells, with the count inside when it fits (zeros left out for many
 * classes, to keep the picture calm), and the frame around them. */
static void heat_cells(cairo_t *cr, const heat_layout *l, const int *conf, int k)
{
    const int cell = l->cell;
    const double gx = l->gx, gy = l->gy;
    double cf = fmin(16, cell * 0.36);
    char buf[32];
    for (int i = 0; i < k; i++) {
        for (int j = 0; j < k; j++) {
            int v = conf[i * k + j];
            double t = (double)v / l->maxc, r, g, b;
            blues(t, &r, &g, &b);
            cairo_set_source_rgb(cr, r, g, b);
            cairo_rectangle(cr, gx + j * cell, gy + i * cell, cell, cell);
            cairo_fill(cr);
            if (cf < 7.5 || (k > 20 && v == 0)) continue;
            snprintf(buf, sizeof buf, "%d", v);
            double size = fit_font(cr, buf, cell - 3, cf, 6, false);
            if (size < 7 && text_w(cr, buf) > cell - 2) continue;
            if (t > 0.5)
                cairo_set_source_rgb(cr, 1, 1, 1);
            else
                rgb(cr, C_TEXT);
            text(cr, gx + j * cell + cell / 2.0, gy + i * cell + cell / 2.0, buf, 0.5, 0.5);
        }
    }
    rgb(cr, C_AXIS);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, gx - 0.5, gy - 0.5, l->gs + 1, l->gs + 1);
    cairo_stroke(cr);
}

/* Class names: down the left (true), across the bottom (predicted). */
static void heat_labels(cairo_t *cr, const heat_layout *l, const hcr_model *m, int k)
{
    const int cell = l->cell;
    const double gx = l->gx, gy = l->gy, gs = l->gs;
    rgb(cr, C_TEXT);
    font(cr, l->lf, false);
    for (int i = 0; i < k; i += l->label_step) {
        const char *nm = hcr_model_class_name(m, i);
        text(cr, gx - 8, gy + i * cell + cell / 2.0, nm, 1, 0.5);
        if (l->rotate_x) {
            cairo_save(cr);
            cairo_translate(cr, gx + i * cell + cell / 2.0, gy + gs + 8);
            cairo_rotate(cr, -M_PI / 2);
            text(cr, 0, 0, nm, 1, 0.5);
            cairo_restore(cr);
        } else {
            text(cr, gx + i * cell + cell / 2.0, gy + gs + 8, nm, 0.5, 0);
        }
    }
    font(cr, 16, false);
    text(cr, gx + gs / 2, gy + gs + 8 + l->xlab_h + 14, "Predicted label", 0.5, 0);
    cairo_save(cr);
    cairo_translate(cr, 28, gy + gs / 2);
    cairo_rotate(cr, -M_PI / 2);
    text(cr, 0, 0, "True label", 0.5, 0.5);
    cairo_restore(cr);
}

/* The colour bar right of the matrix, with count ticks. */
static void heat_colour_bar(cairo_t *cr, const heat_layout *l)
{
    const double gy = l->gy, gs = l->gs;
    double bx = l->gx + gs + 28, bw = 22;
    cairo_pattern_t *grad = cairo_pattern_create_linear(0, gy + gs, 0, gy);
    for (int s = 0; s <= 16; s++) {
        double r, g, b;
        blues(s / 16.0, &r, &g, &b);
        cairo_pattern_add_color_stop_rgb(grad, s / 16.0, r, g, b);
    }
    cairo_set_source(cr, grad);
    cairo_rectangle(cr, bx, gy, bw, gs);
    cairo_fill(cr);
    cairo_pattern_destroy(grad);
    rgb(cr, C_AXIS);
    cairo_rectangle(cr, bx - 0.5, gy - 0.5, bw + 1, gs + 1);
    cairo_stroke(cr);
    font(cr, 14, false);
    char buf[32];
    for (double v = 0; v <= l->maxc; v += l->cstep) {
        double y = gy + gs - v / l->maxc * gs;
        rgb(cr, C_AXIS);
        cairo_move_to(cr, bx + bw, y);
        cairo_line_to(cr, bx + bw + 5, y);
        cairo_stroke(cr);
        thousands(buf, sizeof buf, (long)v);
        rgb(cr, C_TEXT);
        text(cr, bx + bw + 9, y, buf, 0, 0.5);
    }
}

static hcr_status draw_confusion(rbuf *out, const char *name, const hcr_model *m, const int *conf,
                                 int k, int total, double accuracy)
{
    heat_layout l;
    heat_measure(&l, m, conf, k);
    int W = (int)ceil(l.gx + l.gs + 28 + 22 + 10 + l.bar_text_w + 24);
    int H = (int)ceil(l.gy + l.gs + 8 + l.xlab_h + 44);
    if (W < 600) W = 600;
    canvas c;
    if (!canvas_open(&c, W, H)) return canvas_finish(&c, out, name);
    cairo_t *cr = c.cr;

    char tot[32], buf[200];
    thousands(tot, sizeof tot, total);
    draw_title(cr, W, "Confusion matrix");
    snprintf(buf, sizeof buf, "%s test images, accuracy %.2f%%; rows: true class, columns: predicted",
             tot, 100 * accuracy);
    rgb(cr, C_MUTED);
    fit_font(cr, buf, W - 40, 15, 10, false);
    text(cr, W / 2.0, 52, buf, 0.5, 0);

    heat_cells(cr, &l, conf, k);
    heat_labels(cr, &l, m, k);
    heat_colour_bar(cr, &l);
    return canvas_finish(&c, out, name);
}

/* ----------------------------------------------------------------- files */

/* mkdir -p */
static hcr_status make_dirs(const char *dir)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return hcr__fail(HCR_EINVAL, "report folder path is too long");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return hcr__fail(HCR_EIO, "cannot create %s: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0777) != 0 && errno != EEXIST)
        return hcr__fail(HCR_EIO, "cannot create %s: %s", p, strerror(errno));
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
        return hcr__fail(HCR_EIO, "%s is not a folder", p);
    return HCR_OK;
}

/* Write dir/name through dir/.name.tmp and a rename. */
static hcr_status write_atomic(const char *dir, const char *name, const void *data, size_t n)
{
    char path[4200], tmp[4200];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= (int)sizeof tmp)
        return hcr__fail(HCR_EINVAL, "report folder path is too long");
    FILE *f = fopen(tmp, "wb");
    if (!f) return hcr__fail(HCR_EIO, "cannot write %s: %s", tmp, strerror(errno));
    bool ok = fwrite(data, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return hcr__fail(HCR_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return HCR_OK;
}

/* ------------------------------------------------------------- the page */

typedef struct history {
    int n;
    double *loss, *acc, *vloss, *vacc, *secs;
    bool has_val;
} history;

static void history_free(history *h)
{
    free(h->loss);
    free(h->acc);
    free(h->vloss);
    free(h->vacc);
    free(h->secs);
    memset(h, 0, sizeof *h);
}

static double jnum(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* The "history" metadata: a JSON array of per-epoch objects. */
static hcr_status history_parse(const hcr_model *m, history *h)
{
    memset(h, 0, sizeof *h);
    const char *js = hcr_model_get_meta(m, "history");
    cJSON *arr = js ? cJSON_Parse(js) : NULL;
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n > 0) {
        h->loss = calloc((size_t)n, sizeof(double));
        h->acc = calloc((size_t)n, sizeof(double));
        h->vloss = calloc((size_t)n, sizeof(double));
        h->vacc = calloc((size_t)n, sizeof(double));
        h->secs = calloc((size_t)n, sizeof(double));
        if (!h->loss || !h->acc || !h->vloss || !h->vacc || !h->secs) {
            cJSON_Delete(arr);
            history_free(h);
            return hcr__fail(HCR_ENOMEM, "out of memory");
        }
        bool any_val = false;
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(arr, i);
            h->loss[i] = jnum(e, "loss");
            h->acc[i] = jnum(e, "accuracy");
            h->vloss[i] = jnum(e, "val_loss");
            h->vacc[i] = jnum(e, "val_accuracy");
            h->secs[i] = jnum(e, "seconds");
            any_val |= (isfinite(h->vloss[i]) && h->vloss[i] != 0) ||
                       (isfinite(h->vacc[i]) && h->vacc[i] != 0);
        }
        h->n = n;
        h->has_val = any_val;
        /* The recipe says for sure whether there was a validation split. */
        cJSON *recipe = cJSON_Parse(hcr_model_get_meta(m, "recipe") ? hcr_model_get_meta(m, "recipe") : "");
        double vi = jnum(recipe, "validation_images");
        if (isfinite(vi)) h->has_val = vi > 0;
        cJSON_Delete(recipe);
    }
    cJSON_Delete(arr);
    return HCR_OK;
}

static const char page_css[] =
    "body{font-family:'DejaVu Sans',Verdana,sans-serif;color:#1a1a1a;background:#fff;"
    "max-width:1000px;margin:0 auto;padding:24px 28px 60px;line-height:1.45}"
    "h1{font-size:28px;margin:0 0 4px}h2{font-size:21px;margin:36px 0 10px;"
    "border-bottom:1px solid #ccc;padding-bottom:4px}"
    ".sub{color:#555;margin:0 0 18px}.cards+.sub{margin-top:12px}code,pre{font-family:'DejaVu Sans Mono',monospace}"
    "pre{background:#f6f6f6;border:1px solid #ddd;padding:10px;overflow-x:auto;font-size:13px}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ccc;border-radius:6px;"
    "padding:10px 16px;min-width:150px}.card b{display:block;font-size:24px}"
    ".card span{color:#555;font-size:14px}"
    "figure{margin:14px 0;text-align:center}img{max-width:100%;height:auto;border:1px solid #e4e4e4}"
    "figcaption{color:#555;font-size:14px;margin-top:4px}"
    "table{border-collapse:collapse;font-size:14px;margin:8px 0}"
    "th,td{border-bottom:1px solid #ddd;padding:4px 12px;text-align:left}"
    "th{background:#f2f2f2}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.total td{font-weight:bold;border-top:2px solid #999}"
    ".cols{column-count:2;column-gap:24px}"
    "footer{margin-top:40px;color:#777;font-size:13px}"
    "@media print{h2{break-after:avoid}figure{break-inside:avoid}}";

/* Marks on <body> how many pictures actually decoded (data-images-ok="5/5"),
 * which the browser test reads; inline, so the page stays self-contained. */
static const char page_script[] =
    "<script>\n"
    "window.addEventListener('load', function () {\n"
    "  var imgs = document.images, ok = 0;\n"
    "  for (var i = 0; i < imgs.length; i++)\n"
    "    if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;\n"
    "  document.body.setAttribute('data-images-ok', ok + '/' + imgs.length);\n"
    "});\n"
    "</script>\n";

/* The PNG inline as a data: URI. Base64 because an <img> inside one file
 * can only carry binary data that way (data: URIs with raw bytes are not
 * valid HTML); a dozen lines of our own beat another library for it. */
static void html_figure(rbuf *b, const rbuf *png, const char *name, const char *alt,
                        const char *caption)
{
    char *enc = malloc(4 * ((png->len + 2) / 3) + 1);
    if (!enc) {
        b->oom = true;
        return;
    }
    report_base64((const unsigned char *)png->p, png->len, enc);
    rb_str(b, "<figure><img alt=\"");
    rb_esc(b, alt);
    rb_fmt(b, "\" title=\"%s\" src=\"data:image/png;base64,", name);
    rb_str(b, enc);
    rb_str(b, "\"><figcaption>");
    rb_esc(b, caption);
    rb_fmt(b, " (<code>%s</code>)</figcaption></figure>\n", name);
    free(enc);
}

static void html_kv_json(rbuf *b, const char *json)
{
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(o)) {
        rb_str(b, "<p>Not recorded.</p>\n");
        cJSON_Delete(o);
        return;
    }
    rb_str(b, "<table>\n");
    for (const cJSON *it = o->child; it; it = it->next) {
        rb_str(b, "<tr><th>");
        rb_esc(b, it->string);
        rb_str(b, "</th><td><code>");
        if (cJSON_IsString(it)) {
            rb_esc(b, it->valuestring);
        } else {
            char *t = cJSON_PrintUnformatted(it);
            rb_esc(b, t ? t : "?");
            cJSON_free(t);
        }
        rb_str(b, "</code></td></tr>\n");
    }
    rb_str(b, "</table>\n");
    cJSON_Delete(o);
}

typedef struct results {
    int k, n, wrong;
    double loss, accuracy, predict_seconds;
    int *confusion, *support;
    double *precision, *recall, *f1;
} results;

/* From the doctype to the line naming the model and its dataset. */
static void html_head(rbuf *b, hcr_model *m, int k)
{
    char a[64];
    rb_str(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>hcr report: ");
    rb_esc(b, hcr_model_spec(m));
    rb_str(b, "</title>\n<style>");
    rb_str(b, page_css);
    rb_str(b, "</style>\n</head>\n<body>\n<h1>Training report</h1>\n<p class=\"sub\">Model <code>");
    rb_esc(b, hcr_model_spec(m));
    thousands(a, sizeof a, (long)hcr_model_param_count(m));
    rb_fmt(b, "</code>, %s parameters, %d classes", a, k);
    const char *ds = hcr_model_get_meta(m, "dataset");
    if (ds) {
        rb_str(b, ", dataset <code>");
        rb_esc(b, ds);
        rb_str(b, "</code>");
    }
    rb_str(b, ".</p>\n");
}

/* The headline numbers as cards, then what training itself recorded. */
static void html_cards(rbuf *b, hcr_model *m, const results *r, const history *h)
{
    char a[64], c[64];
    rb_str(b, "<div class=\"cards\">\n");
    thousands(a, sizeof a, r->n);
    rb_fmt(b, "<div class=\"card\"><b>%.2f%%</b><span>test accuracy (%s images)</span></div>\n",
           100 * r->accuracy, a);
    rb_fmt(b, "<div class=\"card\"><b>%.4f</b><span>test loss</span></div>\n", r->loss);
    thousands(c, sizeof c, r->wrong);
    rb_fmt(b, "<div class=\"card\"><b>%s</b><span>misclassified of %s</span></div>\n", c, a);
    const char *ts = hcr_model_get_meta(m, "train_seconds");
    if (ts) {
        duration(c, sizeof c, atof(ts));
        rb_fmt(b, "<div class=\"card\"><b>%s</b><span>training, %d epoch%s</span></div>\n", c,
               h->n, h->n == 1 ? "" : "s");
    }
    rb_str(b, "</div>\n");
    const char *ta = hcr_model_get_meta(m, "test_accuracy"), *tl = hcr_model_get_meta(m, "test_loss");
    if (ta && tl)
        rb_fmt(b, "<p class=\"sub\">Recorded in the model at the end of training: test accuracy "
                  "%.2f%%, test loss %.4f.</p>\n", 100 * atof(ta), atof(tl));
}

/* Precision, recall, F1 and support per class, with their macro and
 * support-weighted averages. */
static void html_per_class(rbuf *b, hcr_model *m, const results *r)
{
    char a[64];
    const int k = r->k;
    rb_str(b, "<h2 id=\"per-class\">Per-class precision, recall and F1</h2>\n<table>\n<tr><th>class</th>"
              "<th class=\"n\">precision</th><th class=\"n\">recall</th><th class=\"n\">F1</th>"
              "<th class=\"n\">support</th></tr>\n");
    double mp = 0, mr = 0, mf = 0, wp = 0, wr = 0, wf = 0;
    for (int i = 0; i < k; i++) {
        rb_str(b, "<tr><td>");
        rb_esc(b, hcr_model_class_name(m, i));
        thousands(a, sizeof a, r->support[i]);
        rb_fmt(b, "</td><td class=\"n\">%.4f</td><td class=\"n\">%.4f</td><td class=\"n\">%.4f</td>"
                  "<td class=\"n\">%s</td></tr>\n", r->precision[i], r->recall[i], r->f1[i], a);
        mp += r->precision[i];
        mr += r->recall[i];
        mf += r->f1[i];
        wp += r->precision[i] * r->support[i];
        wr += r->recall[i] * r->support[i];
        wf += r->f1[i] * r->support[i];
    }
    thousands(a, sizeof a, r->n);
    rb_fmt(b, "<tr class=\"total\"><td>macro average</td><td class=\"n\">%.4f</td><td class=\"n\">%.4f</td>"
              "<td class=\"n\">%.4f</td><td class=\"n\">%s</td></tr>\n", mp / k, mr / k, mf / k, a);
    rb_fmt(b, "<tr><td>weighted average</td><td class=\"n\">%.4f</td><td class=\"n\">%.4f</td>"
              "<td class=\"n\">%.4f</td><td class=\"n\">%s</td></tr>\n</table>\n",
           wp / r->n, wr / r->n, wf / r->n, a);
}

/* The layer table, as hcr summary prints it. */
static void html_model_summary(rbuf *b, hcr_model *m)
{
    rb_str(b, "<h2>Model</h2>\n<pre>");
    char *sum = NULL;
    size_t sumlen = 0;
    FILE *f = open_memstream(&sum, &sumlen);
    if (f) {
        hcr_model_summary(m, f);
        fclose(f);
        /* Without the blank lines Keras puts between layers: calmer on a page. */
        for (char *line = sum, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next) *next++ = '\0';
            if (*line) {
                rb_esc(b, line);
                rb_str(b, "\n");
            }
        }
    }
    free(sum);
    rb_str(b, "</pre>\n");
}

/* The per-epoch history table. */
static void html_history(rbuf *b, const history *h)
{
    rb_str(b, "<h2>History</h2>\n");
    if (h->n == 0) {
        rb_str(b, "<p>No finished epochs recorded.</p>\n");
        return;
    }
    rb_str(b, "<table>\n<tr><th class=\"n\">epoch</th><th class=\"n\">loss</th>"
              "<th class=\"n\">accuracy</th>");
    if (h->has_val) rb_str(b, "<th class=\"n\">val_loss</th><th class=\"n\">val_accuracy</th>");
    rb_str(b, "<th class=\"n\">seconds</th></tr>\n");
    for (int i = 0; i < h->n; i++) {
        rb_fmt(b, "<tr><td class=\"n\">%d</td><td class=\"n\">%.4f</td><td class=\"n\">%.4f</td>",
               i + 1, h->loss[i], h->acc[i]);
        if (h->has_val)
            rb_fmt(b, "<td class=\"n\">%.4f</td><td class=\"n\">%.4f</td>", h->vloss[i], h->vacc[i]);
        rb_fmt(b, "<td class=\"n\">%.1f</td></tr>\n", h->secs[i]);
    }
    rb_str(b, "</table>\n");
}

/* Training time (total and per epoch) and this report's inference speed. */
static void html_timings(rbuf *b, hcr_model *m, const results *r, const history *h)
{
    char a[64];
    rb_str(b, "<h2>Timings</h2>\n<table>\n");
    const char *ts = hcr_model_get_meta(m, "train_seconds");
    if (ts) {
        duration(a, sizeof a, atof(ts));
        rb_fmt(b, "<tr><th>training, total</th><td class=\"n\">%s</td></tr>\n", a);
    }
    if (h->n > 0) {
        double sum_s = 0;
        for (int i = 0; i < h->n; i++) sum_s += isfinite(h->secs[i]) ? h->secs[i] : 0;
        rb_fmt(b, "<tr><th>training, mean per epoch</th><td class=\"n\">%.1fs</td></tr>\n",
               sum_s / h->n);
    }
    thousands(a, sizeof a, r->n);
    rb_fmt(b, "<tr><th>inference on %s test images (for this report)</th><td class=\"n\">%.2fs "
              "(%.0f images/s, %.3f ms per image)</td></tr>\n</table>\n",
           a, r->predict_seconds, r->predict_seconds > 0 ? r->n / r->predict_seconds : 0,
           1000 * r->predict_seconds / r->n);
}

static void build_html(rbuf *b, hcr_model *m, const results *r, const history *h, rbuf png[])
{
    html_head(b, m, r->k);
    html_cards(b, m, r, h);

    rb_str(b, "<h2 id=\"curves\">Learning curves</h2>\n");
    html_figure(b, &png[PNG_ACCURACY], report_png_names[PNG_ACCURACY], "Training and validation accuracy per epoch",
                "Accuracy per epoch: training (solid, circles) and validation (dashed, squares)");
    html_figure(b, &png[PNG_LOSS], report_png_names[PNG_LOSS], "Training and validation loss per epoch",
                "Cross-entropy loss per epoch: training (solid, circles) and validation (dashed, squares)");

    rb_str(b, "<h2 id=\"samples\">Test images</h2>\n");
    html_figure(b, &png[PNG_SAMPLES], report_png_names[PNG_SAMPLES], "The first test images with true and predicted labels",
                "The first test images with their true label and the model's prediction, red where wrong");

    rb_str(b, "<h2 id=\"confusion\">Confusion matrix</h2>\n");
    html_figure(b, &png[PNG_CONFUSION], report_png_names[PNG_CONFUSION], "Confusion matrix heat map",
                "Counts of test images by true class (rows) and predicted class (columns)");

    html_per_class(b, m, r);

    rb_str(b, "<h2 id=\"mistakes\">Most confident mistakes</h2>\n");
    html_figure(b, &png[PNG_MISCLASSIFIED], report_png_names[PNG_MISCLASSIFIED], "Misclassified test images",
                "Misclassified test images, the ones the model was surest about first");

    html_model_summary(b, m);
    rb_str(b, "<h2>Training recipe</h2>\n");
    html_kv_json(b, hcr_model_get_meta(m, "recipe"));
    html_history(b, h);
    html_timings(b, m, r, h);

    rb_str(b, "<h2>Data</h2>\n<p>SHA-256 of the uncompressed dataset files the model was trained "
              "and tested on:</p>\n");
    html_kv_json(b, hcr_model_get_meta(m, "dataset_sha256"));

    rb_fmt(b, "<footer>Written by hcr %s (<code>hcr report</code>). This page is one "
              "self-contained file: the pictures are inline, nothing is loaded from the network.</footer>\n",
           HCR_VERSION);
    rb_str(b, page_script);
    rb_str(b, "</body>\n</html>\n");
}

/* ------------------------------------------------------------ the report */

static int by_confidence(const void *a, const void *b)
{
    const grid_item *x = a, *y = b;
    if (x->confidence != y->confidence) return x->confidence < y->confidence ? 1 : -1;
    return x->index - y->index;
}

static void results_free(results *r)
{
    free(r->confusion);
    free(r->support);
    free(r->precision);
    free(r->recall);
    free(r->f1);
}

/* One pass over the test set gives everything: predictions (pred),
 * confidences (probs), the mistakes (items, r->wrong of them), loss (the
 * same clamped cross-entropy as training), the confusion matrix and the
 * per-class scores. */
static hcr_status score_test(hcr_model *m, const hcr_dataset *test, float *probs, int *pred,
                             grid_item *items, results *r)
{
    const int k = r->k, n = r->n;
    double t0 = now_seconds();
    hcr_status s = hcr_model_predict(m, test->pixels, n, probs);
    r->predict_seconds = now_seconds() - t0;
    if (s) return s;
    double loss = 0;
    int nitems = 0;
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (p[j] > p[best]) best = j;
        pred[i] = best;
        float pl = p[test->labels[i]];
        loss -= log(pl > 1e-7f ? (double)pl : 1e-7);
        if (best != test->labels[i])
            items[nitems++] = (grid_item){.index = i, .pred = best, .confidence = p[best]};
    }
    r->loss = loss / n;
    r->wrong = nitems;
    r->accuracy = (double)(n - nitems) / n;
    report_confusion(test->labels, pred, n, k, r->confusion);
    hcr__metrics_from_confusion(r->confusion, k, r->precision, r->recall, r->f1, r->support);
    return HCR_OK;
}

/* samples.png: the first 32 test images and their predictions. */
static hcr_status draw_samples(rbuf *out, const hcr_model *m, const hcr_dataset *test,
                               const float *probs, const int *pred, int k)
{
    const int n = test->count;
    grid_item first[32];
    int nf = n < 32 ? n : 32, wrong = 0;
    for (int i = 0; i < nf; i++) {
        first[i] = (grid_item){.index = i, .pred = pred[i], .confidence = probs[(size_t)i * k + pred[i]]};
        wrong += pred[i] != test->labels[i];
    }
    char sub[160];
    snprintf(sub, sizeof sub, "The first %d test images: true label, then the prediction (%d wrong, in red)",
             nf, wrong);
    return draw_grid(out, report_png_names[PNG_SAMPLES], "Test images", sub, m, test, first, nf, false);
}

/* misclassified.png: the 24 mistakes made with the most confidence;
 * items (the nitems mistakes) are sorted here, surest first. */
static hcr_status draw_mistakes(rbuf *out, const hcr_model *m, const hcr_dataset *test,
                                grid_item *items, int nitems)
{
    qsort(items, (size_t)nitems, sizeof *items, by_confidence);
    int show = nitems < 24 ? nitems : 24;
    char sub[200], a[32], b[32];
    thousands(a, sizeof a, nitems);
    thousands(b, sizeof b, test->count);
    if (nitems == 0)
        snprintf(sub, sizeof sub, "No test image is misclassified (%s images)", b);
    else
        snprintf(sub, sizeof sub, "The %d wrong answers the model was surest about (%s of %s test images are wrong)",
                 show, a, b);
    return draw_grid(out, report_png_names[PNG_MISCLASSIFIED], "Most confident mistakes", sub, m,
                     test, items, show, true);
}

/* The five pictures, in report_png_names' order. */
static hcr_status draw_pictures(rbuf png[], const hcr_model *m, const hcr_dataset *test,
                                const results *r, const history *h, const float *probs,
                                const int *pred, grid_item *items)
{
    hcr_status s;
    if ((s = draw_curves(&png[PNG_ACCURACY], report_png_names[PNG_ACCURACY],
                         "Training and validation accuracy", "Accuracy", h->n, h->acc,
                         h->has_val ? h->vacc : NULL)))
        return s;
    if ((s = draw_curves(&png[PNG_LOSS], report_png_names[PNG_LOSS], "Training and validation loss",
                         "Loss (cross-entropy)", h->n, h->loss, h->has_val ? h->vloss : NULL)))
        return s;
    if ((s = draw_samples(&png[PNG_SAMPLES], m, test, probs, pred, r->k))) return s;
    if ((s = draw_confusion(&png[PNG_CONFUSION], report_png_names[PNG_CONFUSION], m, r->confusion,
                            r->k, r->n, r->accuracy)))
        return s;
    return draw_mistakes(&png[PNG_MISCLASSIFIED], m, test, items, r->wrong);
}

hcr_status hcr_report_write(hcr_model *m, const hcr_dataset *test, const char *dir)
{
    if (!m || !dir || !*dir) return hcr__fail(HCR_EINVAL, "hcr_report_write: bad arguments");
    hcr_status s = hcr__check_dataset(m, test, "test");
    if (s) return s;
    const int k = hcr_model_num_classes(m), n = test->count;
    size_t nprob;
    if (!hcr_mul_size((size_t)n, (size_t)k, &nprob)) return hcr__fail(HCR_ENOMEM, "too many images");

    results r = {.k = k, .n = n};
    history h = {0};
    rbuf png[REPORT_NUM_PNG] = {{0}}, html = {0};
    float *probs = malloc(nprob * sizeof(float));
    int *pred = malloc((size_t)n * sizeof(int));
    grid_item *items = malloc((size_t)n * sizeof(grid_item));
    r.confusion = calloc((size_t)k * k, sizeof(int));
    r.support = calloc((size_t)k, sizeof(int));
    r.precision = calloc((size_t)k, sizeof(double));
    r.recall = calloc((size_t)k, sizeof(double));
    r.f1 = calloc((size_t)k, sizeof(double));
    if (!probs || !pred || !items || !r.confusion || !r.support || !r.precision || !r.recall || !r.f1) {
        s = hcr__fail(HCR_ENOMEM, "out of memory");
        goto done;
    }

    if ((s = score_test(m, test, probs, pred, items, &r))) goto done;
    if ((s = history_parse(m, &h))) goto done;
    if ((s = make_dirs(dir))) goto done;
    if ((s = draw_pictures(png, m, test, &r, &h, probs, pred, items))) goto done;

    build_html(&html, m, &r, &h, png);
    if (html.oom) {
        s = hcr__fail(HCR_ENOMEM, "out of memory writing the report");
        goto done;
    }
    for (int i = 0; i < REPORT_NUM_PNG; i++)
        if ((s = write_atomic(dir, report_png_names[i], png[i].p, png[i].len))) goto done;
    s = write_atomic(dir, "report.html", html.p, html.len);

done:
    for (int i = 0; i < REPORT_NUM_PNG; i++) free(png[i].p);
    free(html.p);
    history_free(&h);
    free(probs);
    free(pred);
    free(items);
    results_free(&r);
    return s;
}
