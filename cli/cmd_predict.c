/*
 * cmd_predict.c - hcr predict: recognise one handwritten character per
 * image file (PNG, JPEG, BMP, GIF, PGM/PPM, or 28x28 raw/IDX bytes with
 * --raw), preprocessed the way MNIST was made.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static const char help[] =
    "usage: hcr predict MODEL IMAGE... [options]\n"
    "\n"
    "Recognise the handwritten character in each image: PNG, JPEG, BMP, GIF,\n"
    "PGM/PPM, any size, colour or grey, dark ink on light paper or the other way\n"
    "round; '-' reads standard input. The image is converted to grey, its ink\n"
    "found (Otsu threshold, uneven paper flattened), cropped, scaled so the longer\n"
    "side is 20 px and centred by mass in 28x28, as MNIST was made. Images over\n"
    "50 megapixels or 256 MiB are refused.\n"
    "\n"
    "options:\n"
    "  -k N                     show the N most probable classes (default 1)\n"
    "  --min-confidence P       below probability P the answer is 'uncertain'\n"
    "                           (default 0.5; 0 never)\n"
    "  --json                   one JSON array with an object per image\n"
    "  --dump-preprocessed F    write what the network saw as a PNG (F, or\n"
    "                           F with -1, -2... before the extension for several)\n"
    "  --raw                    the files are already 28x28 MNIST-polarity bytes:\n"
    "                           784 raw bytes, or an IDX image file (every image),\n"
    "                           either one raw or gzip-compressed (.gz)\n"
    "  -h, --help               this help\n"
    "\n"
    "Exit status: 0 all recognised, 3 some uncertain, 1 an error, 2 bad usage.\n";

/* The i-th of n dump paths. */
static void dump_path(const char *base, int i, int n, char *buf, size_t len)
{
    if (n <= 1) {
        snprintf(buf, len, "%s", base);
        return;
    }
    const char *dot = strrchr(base, '.'), *slash = strrchr(base, '/');
    if (!dot || (slash && dot < slash)) dot = base + strlen(base);
    snprintf(buf, len, "%.*s-%d%s", (int)(dot - base), base, i + 1, dot);
}

/* Read all of gz (at most HCR_IMAGE_MAX_BYTES) into *out (*n bytes). On
 * failure msg (size mn) says why, naming the file `shown`. */
static int gz_read_all(gzFile gz, const char *shown, uint8_t **out, size_t *n_out, char *msg, size_t mn)
{
    const size_t limit = (size_t)HCR_IMAGE_MAX_BYTES;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    int rc = 0;
    for (;;) {
        if (!buf) {
            snprintf(msg, mn, "out of memory reading '%s'", shown);
            rc = 1;
            break;
        }
        if (n == cap) {
            if (cap > limit) {
                snprintf(msg, mn, "'%s' is larger than %zu bytes%s, the limit for --raw", shown, limit,
                         gzdirect(gz) ? "" : " once decompressed");
                rc = 1;
                break;
            }
            size_t ncap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                buf = NULL;
                continue;
            }
            buf = nb;
            cap = ncap;
        }
        errno = 0;
        int r = gzread(gz, buf + n, (unsigned)(cap - n));
        int saved = errno, zerr = Z_OK;
        const char *zmsg = gzerror(gz, &zerr);
        /* zlib puts "<fd:3>: " before its message: the file is named here */
        if (zmsg && !strncmp(zmsg, "<fd:", 4) && strstr(zmsg, ">: ")) zmsg = strstr(zmsg, ">: ") + 3;
        if (zerr != Z_OK && zerr != Z_STREAM_END) {
            if (zerr == Z_ERRNO)
                snprintf(msg, mn, "'%s': read error: %s", shown, strerror(saved));
            else if (zerr == Z_BUF_ERROR)
                snprintf(msg, mn, "'%s': corrupt gzip data: unexpected end of file (the compressed "
                                  "stream is truncated)", shown);
            else
                snprintf(msg, mn, "'%s': corrupt gzip data: %s", shown, zmsg ? zmsg : "unknown error");
            rc = 1;
            break;
        }
        if (r <= 0) break;
        n += (size_t)r;
    }
    if (rc) {
        free(buf);
        return 1;
    }
    *out = buf;
    *n_out = n;
    return 0;
}

/* The n bytes of a --raw file as images: 784 bytes are one, an IDX3 file
 * of 28x28 images is all of them (its header moved out of the way). On
 * failure msg says why. */
static int raw_images(uint8_t *buf, size_t n, bool compressed, const char *shown, int *count,
                      char *msg, size_t mn)
{
    if (n == 784) {
        *count = 1;
        return 0;
    }
    if (n >= 16 && buf[0] == 0 && buf[1] == 0 && buf[2] == 8 && buf[3] == 3) {
        uint32_t d[3];
        for (int i = 0; i < 3; i++)
            d[i] = (uint32_t)buf[4 + 4 * i] << 24 | (uint32_t)buf[5 + 4 * i] << 16 |
                   (uint32_t)buf[6 + 4 * i] << 8 | buf[7 + 4 * i];
        if (d[1] == 28 && d[2] == 28 && d[0] >= 1 && (uint64_t)d[0] * 784 + 16 == n) {
            memmove(buf, buf + 16, n - 16);
            *count = (int)d[0];
            return 0;
        }
        snprintf(msg, mn, "'%s': an IDX file of %ux%ux%u images in %zu bytes%s; --raw needs 28x28 "
                          "images and the exact length",
                 shown, d[0], d[1], d[2], n, compressed ? " (decompressed)" : "");
    } else {
        snprintf(msg, mn, "'%s' is %zu bytes%s; --raw needs 784 bytes (28x28) or an IDX image file, "
                          "raw or gzip-compressed",
                 shown, n, compressed ? " (decompressed)" : "");
    }
    return 1;
}

/* Read a --raw file: 784 bytes, or an IDX3 file of 28x28 images; either
 * may be gzip-compressed, as every IDX reader of hcr accepts. On failure
 * msg (size mn) says why, naming the file. */
static int load_raw(const char *path, uint8_t **px, int *count, char *msg, size_t mn)
{
    const bool is_stdin = !strcmp(path, "-");
    const char *shown = is_stdin ? "standard input" : path;
    char why[1100];
    int fd = is_stdin ? dup(STDIN_FILENO) : cli_open_regular(path, why, sizeof why);
    if (fd < 0) {
        if (is_stdin) snprintf(why, sizeof why, "standard input: %s", strerror(errno));
        snprintf(msg, mn, "%s", why);
        return 1;
    }
    gzFile gz = gzdopen(fd, "rb"); /* reads plain files as they are */
    if (!gz) {
        close(fd);
        snprintf(msg, mn, "'%s': out of memory", shown);
        return 1;
    }
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = gz_read_all(gz, shown, &buf, &n, msg, mn);
    const bool compressed = !gzdirect(gz);
    gzclose(gz);
    if (rc) return 1;
    if (raw_images(buf, n, compressed, shown, count, msg, mn)) {
        free(buf);
        return 1;
    }
    *px = buf;
    return 0;
}

typedef struct opts {
    long k;
    double min_conf;
    bool json;
} opts;

/* Report one prediction; returns 0 recognised, 3 uncertain. */
static int report(const opts *o, hcr_model *m, const char *name, const float *p, cJSON *arr)
{
    const int nc = hcr_model_num_classes(m);
    /* The k best of up to 1000 classes (the model's limit), by selection. */
    int order[1000], k = (int)(o->k < nc ? o->k : nc);
    for (int i = 0; i < nc; i++) order[i] = i;
    for (int i = 0; i < k; i++)
        for (int j = i + 1; j < nc; j++)
            if (p[order[j]] > p[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    const bool uncertain = p[order[0]] < o->min_conf;
    if (arr) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "file", name);
        cJSON_AddStringToObject(it, "prediction", hcr_model_class_name(m, order[0]));
        cJSON_AddNumberToObject(it, "confidence", p[order[0]]);
        cJSON_AddBoolToObject(it, "uncertain", uncertain);
        cJSON *top = cJSON_AddArrayToObject(it, "top");
        for (int i = 0; i < k; i++) {
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "class", hcr_model_class_name(m, order[i]));
            cJSON_AddNumberToObject(c, "probability", p[order[i]]);
            cJSON_AddItemToArray(top, c);
        }
        cJSON_AddItemToArray(arr, it);
    } else {
        printf("%s: %s", name, uncertain ? "uncertain: " : "");
        for (int i = 0; i < k; i++)
            printf("%s%s (%.3f)", i ? ", " : "", cli_text(hcr_model_class_name(m, order[i])), p[order[i]]);
        printf("\n");
    }
    return uncertain ? 3 : 0;
}

static void report_error(const char *name, const char *msg, cJSON *arr)
{
    fprintf(stderr, "hcr predict: %s\n", msg);
    if (arr) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "file", name);
        cJSON_AddStringToObject(it, "error", msg);
        cJSON_AddItemToArray(arr, it);
    }
}

/* Everything hcr predict's command line says besides the files. */
typedef struct predict_args {
    opts o;
    const char *dump;
    bool raw;
} predict_args;

/* Parse and check the command line; -1 to go on, else the exit status. */
static int parse_predict(int argc, char **argv, predict_args *a)
{
    static const struct option lopts[] = {
        {"min-confidence", required_argument, 0, 'c'},
        {"json", no_argument, 0, 'j'},
        {"dump-preprocessed", required_argument, 0, 'd'},
        {"raw", no_argument, 0, 'r'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    *a = (predict_args){{1, 0.5, false}, NULL, false};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hk:", lopts, NULL)) != -1) {
        switch (c) {
        case 'k': if (!cli_int("predict", "-k", optarg, 1, 1000, &a->o.k)) return 2; break;
        case 'c': if (!cli_float("predict", "--min-confidence", optarg, 0, 1, &a->o.min_conf)) return 2; break;
        case 'j': a->o.json = true; break;
        case 'd': a->dump = optarg; break;
        case 'r': a->raw = true; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option("predict", argc, argv, "hk:", lopts);
        }
    }
    if (optind >= argc) return cli_usage_error("predict", "which model? (hcr predict MODEL IMAGE...)");
    if (optind + 1 >= argc) return cli_usage_error("predict", "which image? (hcr predict MODEL IMAGE...)");
    return -1;
}

/* The worse of two exit statuses: 1 (an error) over 3 (uncertain) over 0. */
static int worse(int worst, int r)
{
    return r > worst && worst != 1 ? r : worst;
}

/* One --raw file, every image in it; returns 0, 3 or 1. */
static int predict_raw(const opts *o, hcr_model *m, const char *name, const char *shown, cJSON *arr)
{
    const int nc = hcr_model_num_classes(m);
    char msg[1200];
    uint8_t *px = NULL;
    int count = 0, worst = 0;
    if (load_raw(name, &px, &count, msg, sizeof msg)) {
        report_error(shown, msg, arr);
        return 1;
    }
    float *pr = malloc(sizeof *pr * (size_t)count * nc);
    if (!pr || hcr_model_predict(m, px, count, pr)) {
        snprintf(msg, sizeof msg, "%s: %s", shown, pr ? hcr_last_error() : "out of memory");
        report_error(shown, msg, arr);
        worst = 1;
    } else {
        for (int j = 0; j < count; j++) {
            char label[1100];
            if (count > 1) snprintf(label, sizeof label, "%s[%d]", shown, j);
            else snprintf(label, sizeof label, "%s", shown);
            worst = worse(worst, report(o, m, label, pr + (size_t)j * nc, arr));
        }
    }
    free(pr);
    free(px);
    return worst;
}

/* One image file (the i-th of nimg, for --dump-preprocessed's names);
 * probs is room for the answer. Returns 0, 3 or 1. */
static int predict_image(const predict_args *a, hcr_model *m, const char *name, const char *shown,
                         int i, int nimg, float *probs, cJSON *arr)
{
    char msg[1200];
    hcr_image *img = NULL;
    uint8_t px[28 * 28];
    int worst = 0;
    if (hcr_image_load(name, &img) || hcr_image_to_mnist(img, px, NULL)) {
        const char *e = hcr_last_error();
        if (strstr(e, shown)) snprintf(msg, sizeof msg, "%s", e);
        else snprintf(msg, sizeof msg, "'%s': %s", shown, e);
        report_error(shown, msg, arr);
        hcr_image_free(img);
        return 1;
    }
    hcr_image_free(img);
    if (a->dump) {
        char dp[4096];
        dump_path(a->dump, i, nimg, dp, sizeof dp);
        if (hcr_image_write(dp, 28, 28, px)) {
            report_error(shown, hcr_last_error(), arr);
            worst = 1;
        }
    }
    if (hcr_model_predict(m, px, 1, probs)) {
        snprintf(msg, sizeof msg, "%s: %s", shown, hcr_last_error());
        report_error(shown, msg, arr);
        return 1;
    }
    return worse(worst, report(&a->o, m, shown, probs, arr));
}

int cmd_predict(int argc, char **argv)
{
    predict_args a;
    int rc = parse_predict(argc, argv, &a);
    if (rc >= 0) return rc;
    const char *mpath = argv[optind];
    const int nimg = argc - optind - 1;
    char **files = argv + optind + 1;

    hcr_model *m = NULL;
    if (cli_load_model(mpath, &m)) return 1;
    if (hcr_model_input_rows(m) != 28 || hcr_model_input_cols(m) != 28) {
        fprintf(stderr, "hcr predict: the model takes %dx%d images; predict needs 28x28\n",
                hcr_model_input_rows(m), hcr_model_input_cols(m));
        hcr_model_free(m);
        return 1;
    }
    float *probs = malloc(sizeof *probs * hcr_model_num_classes(m));
    cJSON *arr = a.o.json ? cJSON_CreateArray() : NULL;
    int worst = 0; /* 0, 3 or 1 */
    for (int i = 0; i < nimg && probs; i++) {
        const char *name = files[i];
        const char *shown = strcmp(name, "-") ? name : "standard input";
        int r = a.raw ? predict_raw(&a.o, m, name, shown, arr)
                      : predict_image(&a, m, name, shown, i, nimg, probs, arr);
        worst = r == 1 ? 1 : worse(worst, r);
    }
    if (!probs) {
        fprintf(stderr, "hcr predict: out of memory\n");
        worst = 1;
    }
    if (arr) {
        char *text = cJSON_Print(arr);
        if (text) cli_puts_json(text);
        cJSON_free(text);
        cJSON_Delete(arr);
    }
    free(probs);
    hcr_model_free(m);
    return worst;
}
