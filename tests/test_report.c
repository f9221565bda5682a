/*
 * test_report.c - the report: metrics on hand-made predictions (a class
 * that is never predicted included), base64, and the pictures of a short
 * real training run on MNIST (../shared/data/mnist or $HCR_TEST_DATA):
 * every PNG decodes, has the expected size and is not blank, and
 * report.html carries the same pictures inline and nothing from the
 * network. A 47-class model checks the layout for many classes.
 *
 * HCR_REPORT_KEEP=DIR keeps the reports (DIR/mnist, DIR/classes47) to look
 * at them.
 */
#include "harness.h"

#include "hcr.h"
#include "nn/metrics.h"
#include "report/report.h"

#include <cairo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void test_confusion_and_scores(void)
{
    /* Class 2 is never predicted; one prediction is out of range. */
    const uint8_t labels[] = {0, 0, 0, 1, 1, 2, 2, 1};
    const int pred[] = {0, 0, 1, 1, 1, 0, 0, 7};
    int conf[9] = {0};
    report_confusion(labels, pred, 8, 3, conf);
    const int want[9] = {2, 1, 0, 0, 2, 0, 2, 0, 0};
    for (int i = 0; i < 9; i++) CHECK_MSG(conf[i] == want[i], "cell %d: %d, expected %d", i, conf[i], want[i]);

    double p[3], r[3], f[3];
    int support[3];
    hcr__metrics_from_confusion(conf, 3, p, r, f, support);
    CHECK_NEAR(p[0], 2.0 / 4, 1e-12);
    CHECK_NEAR(p[1], 2.0 / 3, 1e-12);
    CHECK_NEAR(p[2], 0.0, 0); /* never predicted: precision 0, not NaN */
    CHECK_NEAR(r[0], 2.0 / 3, 1e-12);
    CHECK_NEAR(r[1], 1.0, 1e-12);
    CHECK_NEAR(r[2], 0.0, 0);
    CHECK_NEAR(f[0], 2 * 0.5 * (2.0 / 3) / (0.5 + 2.0 / 3), 1e-12);
    CHECK_NEAR(f[1], 0.8, 1e-12);
    CHECK_NEAR(f[2], 0.0, 0);
    CHECK(support[0] == 3 && support[1] == 2 && support[2] == 2);
}

static void test_base64(void)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char out[64];
    for (int i = 0; i < 7; i++) {
        size_t n = report_base64((const unsigned char *)plain[i], strlen(plain[i]), out);
        CHECK_MSG(!strcmp(out, coded[i]) && n == strlen(coded[i]), "'%s' -> '%s'", plain[i], out);
    }
    const unsigned char bin[] = {0xff, 0xfe, 0x00, 0x3e, 0x3f};
    report_base64(bin, sizeof bin, out);
    CHECK_MSG(!strcmp(out, "//4APj8="), "%s", out);
}

/* ---------------------------------------------------------- file helpers */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    *len = n;
    return buf;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode base64 up to the first character outside the alphabet. */
static unsigned char *b64_decode(const char *s, size_t *len)
{
    size_t n = 0;
    while (b64_value(s[n]) >= 0) n++;
    unsigned char *out = malloc(n * 3 / 4 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; out && i < n; i++) {
        acc = acc << 6 | (uint32_t)b64_value(s[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *len = o;
    return out;
}

typedef struct png_stats {
    int w, h;
    double ink;       /* fraction of pixels that are not near-white      */
    double sd;        /* standard deviation of the grey level            */
    long train_px;    /* pixels near the training line colour (blue)     */
    long val_px;      /* pixels near the validation colour (orange)      */
    long red_px;      /* pixels near the "wrong" red                     */
    long dark_blue_px;/* heat-map cells of the darkest blues             */
} png_stats;

static bool near(int r, int g, int b, unsigned hex, int tol)
{
    return abs(r - (int)((hex >> 16) & 255)) <= tol && abs(g - (int)((hex >> 8) & 255)) <= tol &&
           abs(b - (int)(hex & 255)) <= tol;
}

static bool png_read_stats(const char *path, png_stats *st)
{
    memset(st, 0, sizeof *st);
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return false;
    }
    st->w = cairo_image_surface_get_width(s);
    st->h = cairo_image_surface_get_height(s);
    const unsigned char *d = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    double sum = 0, sum2 = 0;
    long ink = 0;
    for (int y = 0; y < st->h; y++) {
        const uint32_t *row = (const uint32_t *)(const void *)(d + (size_t)y * stride);
        for (int x = 0; x < st->w; x++) {
            int r = (row[x] >> 16) & 255, g = (row[x] >> 8) & 255, b = row[x] & 255;
            double grey = 0.299 * r + 0.587 * g + 0.114 * b;
            sum += grey;
            sum2 += grey * grey;
            ink += grey < 235;
            st->train_px += near(r, g, b, 0x1b4f8a, 24);
            st->val_px += near(r, g, b, 0xe08214, 24);
            st->red_px += near(r, g, b, 0xc0001a, 24);
            st->dark_blue_px += b > 90 && b > r + 60 && r < 60;
        }
    }
    double n = (double)st->w * st->h;
    st->ink = ink / n;
    st->sd = sqrt(sum2 / n - (sum / n) * (sum / n));
    cairo_surface_destroy(s);
    return true;
}

/* ------------------------------------------------------- real training */

static const char *report_dir(const char *name, char *buf, size_t n)
{
    const char *keep = getenv("HCR_REPORT_KEEP");
    snprintf(buf, n, "%s/%s", keep && *keep ? keep : harness_tmpdir(), name);
    return buf;
}

static void set_history(hcr_model *m, const hcr_history *h)
{
    char buf[4096];
    int len = snprintf(buf, sizeof buf, "[");
    for (int i = 0; i < h->epochs; i++)
        len += snprintf(buf + len, sizeof buf - (size_t)len,
                        "%s{\"epoch\":%d,\"loss\":%.6f,\"accuracy\":%.6f,\"val_loss\":%.6f,"
                        "\"val_accuracy\":%.6f,\"seconds\":%.3f}",
                        i ? "," : "", i + 1, h->rows[i].loss, h->rows[i].accuracy,
                        h->rows[i].val_loss, h->rows[i].val_accuracy, h->rows[i].seconds);
    snprintf(buf + len, sizeof buf - (size_t)len, "]");
    hcr_model_set_meta(m, "history", buf);
}

static void test_report_of_a_short_training_run(void)
{
    hcr_dataset *train = NULL, *test = NULL, *part = NULL, *val = NULL, *test_part = NULL;
    hcr_model *m = NULL;
    hcr_status s = hcr_dataset_load_dir(harness_data_dir, "train", &train);
    CHECK_MSG(s == HCR_OK, "%s", hcr_last_error());
    s = hcr_dataset_load_dir(harness_data_dir, "t10k", &test);
    CHECK_MSG(s == HCR_OK, "%s", hcr_last_error());
    if (!train || !test) goto out;
    CHECK(hcr_dataset_slice(train, 0, 3000, &part) == HCR_OK);
    CHECK(hcr_dataset_slice(train, 3000, 500, &val) == HCR_OK);
    CHECK(hcr_dataset_slice(test, 0, 1000, &test_part) == HCR_OK);
    if (!part || !val || !test_part) goto out;

    CHECK(hcr_model_create(HCR_DEFAULT_SPEC, 28, 28, 10, 3, &m) == HCR_OK);
    if (!m) goto out;
    hcr_train_config cfg;
    hcr_train_config_default(&cfg);
    cfg.epochs = 3;
    cfg.batch_size = 64;
    cfg.seed = 3;
    hcr_history h = {0};
    s = hcr_train(m, part, val, &cfg, NULL, NULL, &h);
    CHECK_MSG(s == HCR_OK, "%s", hcr_last_error());
    set_history(m, &h);
    hcr_history_free(&h);
    hcr_model_set_meta(m, "recipe", "{\"optimizer\":\"adam\",\"epochs\":3,\"validation_images\":500}");
    hcr_model_set_meta(m, "train_seconds", "12.5");

    char dir[600];
    report_dir("mnist", dir, sizeof dir);
    s = hcr_report_write(m, test_part, dir);
    CHECK_MSG(s == HCR_OK, "%s", hcr_last_error());

    char path[700];
    png_stats st[REPORT_NUM_PNG];
    for (int i = 0; i < REPORT_NUM_PNG; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, report_png_names[i]);
        bool ok = png_read_stats(path, &st[i]);
        CHECK_MSG(ok, "%s does not decode", path);
        if (!ok) continue;
        CHECK_MSG(st[i].w >= 600, "%s is %d px wide", report_png_names[i], st[i].w);
        CHECK_MSG(st[i].ink > 0.01 && st[i].ink < 0.9, "%s: %.3f of pixels are ink",
                  report_png_names[i], st[i].ink);
        CHECK_MSG(st[i].sd > 20, "%s: grey-level deviation %.1f", report_png_names[i], st[i].sd);
    }
    /* The curves: the expected size and both lines drawn. */
    for (int i = 0; i < 2; i++) {
        CHECK(st[i].w == 900 && st[i].h == 560);
        CHECK_MSG(st[i].train_px > 300, "%s: %ld training-line pixels", report_png_names[i], st[i].train_px);
        CHECK_MSG(st[i].val_px > 300, "%s: %ld validation-line pixels", report_png_names[i], st[i].val_px);
    }
    /* 32 digits in 4 rows of 8; the heat map has dark cells (the diagonal);
     * the mistakes are framed in red. */
    CHECK_MSG(st[2].w == 960 && st[2].h == 644, "samples.png is %dx%d", st[2].w, st[2].h);
    CHECK_MSG(st[3].h >= 600 && st[3].dark_blue_px > 5000, "confusion.png: %dx%d, %ld dark cells px",
              st[3].w, st[3].h, st[3].dark_blue_px);
    CHECK_MSG(st[4].w == 960 && st[4].red_px > 500, "misclassified.png: %d wide, %ld red px", st[4].w,
              st[4].red_px);

    /* The page: the same five pictures inline, nothing from the network. */
    snprintf(path, sizeof path, "%s/report.html", dir);
    size_t len = 0;
    char *html = read_all(path, &len);
    CHECK_MSG(html != NULL, "no %s", path);
    if (html) {
        int imgs = 0;
        for (const char *p = html; (p = strstr(p, "<img")); p++) imgs++;
        CHECK_MSG(imgs == REPORT_NUM_PNG, "%d <img> in the page", imgs);
        for (int i = 0; i < REPORT_NUM_PNG; i++) {
            char key[80];
            snprintf(key, sizeof key, "title=\"%s\" src=\"data:image/png;base64,", report_png_names[i]);
            const char *at = strstr(html, key);
            CHECK_MSG(at != NULL, "%s is not inline", report_png_names[i]);
            if (!at) continue;
            size_t n = 0, fn = 0;
            unsigned char *png = b64_decode(at + strlen(key), &n);
            snprintf(path, sizeof path, "%s/%s", dir, report_png_names[i]);
            char *file = read_all(path, &fn);
            CHECK_MSG(png && file && n == fn && !memcmp(png, file, n),
                      "the inline %s differs from the file", report_png_names[i]);
            free(png);
            free(file);
        }
        CHECK(strstr(html, "http://") == NULL && strstr(html, "https://") == NULL);
        CHECK(strstr(html, "<script src") == NULL && strstr(html, "<link") == NULL);
        CHECK(strstr(html, "url(") == NULL);
        CHECK_CONTAINS(html, "data-images-ok");
        CHECK_CONTAINS(html, "Total params: 225,034");
        CHECK_CONTAINS(html, "macro average");
        CHECK_CONTAINS(html, "<th>optimizer</th>");
        CHECK_CONTAINS(html, "test accuracy (1,000 images)");
        free(html);
    }
    /* No temporary file left behind. */
    snprintf(path, sizeof path, "%s/.report.html.tmp", dir);
    struct stat sb;
    CHECK(stat(path, &sb) != 0);

    /* Bad arguments and an unusable folder fail with a message. */
    CHECK(hcr_report_write(m, NULL, dir) == HCR_EINVAL);
    snprintf(path, sizeof path, "%s/accuracy.png/sub", dir);
    CHECK(hcr_report_write(m, test_part, path) == HCR_EIO);
    CHECK_CONTAINS(hcr_last_error(), "accuracy.png");
out:
    hcr_model_free(m);
    hcr_dataset_free(train);
    hcr_dataset_free(test);
    hcr_dataset_free(part);
    hcr_dataset_free(val);
    hcr_dataset_free(test_part);
}

/* 47 classes (EMNIST "balanced" names): the layout must still fit. An
 * untrained model is enough to draw it; no history gives empty curves. */
static void test_report_with_47_classes(void)
{
    static const char names[] =
        "[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"A\",\"B\",\"C\",\"D\",\"E\","
        "\"F\",\"G\",\"H\",\"I\",\"J\",\"K\",\"L\",\"M\",\"N\",\"O\",\"P\",\"Q\",\"R\",\"S\",\"T\","
        "\"U\",\"V\",\"W\",\"X\",\"Y\",\"Z\",\"a\",\"b\",\"d\",\"e\",\"f\",\"g\",\"h\",\"n\",\"q\","
        "\"r\",\"t\"]";
    hcr_dataset *test = NULL, *part = NULL;
    hcr_model *m = NULL;
    hcr_status s = hcr_dataset_load_dir(harness_data_dir, "t10k", &test);
    CHECK_MSG(s == HCR_OK, "%s", hcr_last_error());
    if (!test) return;
    CHECK(hcr_dataset_slice(test, 0, 2000, &part) == HCR_OK);
    CHECK(hcr_model_create("conv8-pool-dense32", 28, 28, 47, 5, &m) == HCR_OK);
    if (!part || !m) goto out;
    for (int i = 0; i < part->count; i++) part->labels[i] = (uint8_t)(i * 7 % 47);
    CHECK(hcr_model_set_meta(m, "class_names", names) == HCR_OK);
    CHECK(!strcmp(hcr_model_class_name(m, 46), "t"));

    char dir[600], path[700];
    report_dir("classes47", dir, sizeof dir);
    s = hcr_report_write(m, part, dir);
    CHECK_MSG(s == HCR_OK, "%s", hcr_last_error());
    png_stats st;
    snprintf(path, sizeof path, "%s/confusion.png", dir);
    CHECK(png_read_stats(path, &st));
    /* Cells of at least 16 px for 47 names, and the picture not huge. */
    CHECK_MSG(st.w >= 47 * 16 && st.w <= 1600 && st.h >= 47 * 16 && st.h <= 1600,
              "confusion.png is %dx%d", st.w, st.h);
    snprintf(path, sizeof path, "%s/accuracy.png", dir);
    CHECK(png_read_stats(path, &st) && st.w == 900 && st.h == 560);
out:
    hcr_model_free(m);
    hcr_dataset_free(test);
    hcr_dataset_free(part);
}

TEST_MAIN(TEST(test_confusion_and_scores), TEST(test_base64), TEST(test_report_of_a_short_training_run),
          TEST(test_report_with_47_classes))
