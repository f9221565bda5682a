/*
 * cmd_read.c - hcr read: a line of handwritten characters (a number such as
 * "2024") to text, and --eval: sequence and character accuracy on numbers
 * composed from MNIST test digits.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: hcr read MODEL IMAGE [options]\n"
    "       hcr read MODEL --eval [--dataset NAME] [--data DIR] [--count N] [--digits N]\n"
    "\n"
    "Read a line of handwritten characters (a number such as 2024, or a word with a\n"
    "letters model) from an image\n"
    "(PNG, JPEG, BMP, GIF, PGM/PPM; '-' for standard input) and print the text.\n"
    "The ink is split into connected components; pieces over each other are\n"
    "merged, pieces much wider than a character are cut where the model is most\n"
    "confident of both halves, and each character is preprocessed as by predict.\n"
    "\n"
    "options:\n"
    "  --json                   the text, and per character its confidence, box\n"
    "                           (x, y, w, h in image pixels) and class probabilities\n"
    "  --min-confidence P       characters below probability P are uncertain\n"
    "                           (default 0.5; 0 never); exit status 3 if any\n"
    "  --dump-preprocessed F    write what the network saw, characters side by side\n"
    "  --eval                   compose numbers (or words) from *test* images of\n"
    "                           the model's dataset (random spacing, slight overlap,\n"
    "                           scale and baseline jitter) and report sequence and\n"
    "                           character accuracy, for separate characters and\n"
    "                           with one touching pair\n"
    "  --dataset NAME           --eval's dataset (default: the model's own; see\n"
    "                           hcr data list)\n"
    "  --data DIR               the dataset's files for --eval (default: the cache)\n"
    "  --count N                numbers per case for --eval (default 1000)\n"
    "  --digits N               characters per number for --eval (default 4)\n"
    "  --seed N                 --eval's random seed (default 1)\n"
    "  --save-examples DIR      --eval: also write the first 10 images of each case\n"
    "  --verbose                --eval: print every number read wrongly\n"
    "  -h, --help               this help\n"
    "\n"
    "Exit status: 0 read, 3 some character uncertain, 1 an error, 2 bad usage.\n";

static size_t edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    size_t *row = malloc(sizeof *row * (m + 1));
    if (!row) return n > m ? n : m;
    for (size_t j = 0; j <= m; j++) row[j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    size_t d = row[m];
    free(row);
    return d;
}

typedef struct eval_opts {
    const char *data, *examples, *dataset;
    long count, digits, seed;
    bool json, verbose;
} eval_opts;

/* The text read as part of a file name: the class names may hold anything
 * (a model's metadata), so '/', '\\', control characters (C0, DEL, C1)
 * and bytes that are not UTF-8 become '_'. */
static void file_name_part(const char *text, char *out, size_t n)
{
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p;) {
        size_t seq = cli_utf8_len(p);
        const bool bad = seq == 0 || (seq == 1 && (*p < 0x20 || *p == 0x7f || *p == '/' || *p == '\\')) ||
                         (seq == 2 && p[0] == 0xc2 && p[1] < 0xa0);
        size_t len = bad ? 1 : seq;
        if (k + len + 1 > n) break;
        if (bad)
            out[k] = '_';
        else
            memcpy(out + k, p, len);
        k += len;
        p += seq ? seq : 1;
    }
    out[k] = '\0';
    if (k == 0 || !strcmp(out, ".") || !strcmp(out, "..")) snprintf(out, n, "_");
}

/* Save example i of a case as "<dir>/<case>-<i>-<text>.png". */
static int save_example(const eval_opts *e, bool touching, long i, const char *truth, const hcr_image *img)
{
    char path[4400], part[80];
    file_name_part(truth, part, sizeof part);
    snprintf(path, sizeof path, "%s/%s-%02ld-%s.png", e->examples, touching ? "touching" : "separate",
             i, part);
    if (hcr_image_write(path, img->width, img->height, img->pixels)) {
        fprintf(stderr, "hcr read: --save-examples: %s\n", hcr_last_error());
        return 1;
    }
    return 0;
}

/* What one case of --eval counted. */
typedef struct eval_tally {
    long exact, chars, correct, failed;
} eval_tally;

/* Compose e->count numbers (with one touching pair or none) and read
 * them; returns 0, or 1 after printing why not. */
static int eval_case(hcr_model *m, const hcr_dataset *test, const eval_opts *e, int touching,
                     eval_tally *t)
{
    *t = (eval_tally){0, 0, 0, 0};
    for (long i = 0; i < e->count; i++) {
        hcr_image *img = NULL;
        char truth[80];
        uint64_t seed = (uint64_t)e->seed * 1000003u + (uint64_t)i * 2 + (uint64_t)touching;
        if (hcr_compose_number(test, (int)e->digits, touching, seed, &img, truth, sizeof truth))
            return cli_fail("composing a number");
        if (e->examples && i < 10 && save_example(e, touching, i, truth, img)) {
            hcr_image_free(img);
            return 1;
        }
        hcr_line line;
        const char *got = "";
        if (hcr_read_line(m, img, &line) == HCR_OK) got = line.text;
        else t->failed++;
        size_t len = strlen(truth), d = edit_distance(got, truth);
        t->exact += !strcmp(got, truth);
        t->chars += (long)len;
        t->correct += (long)(d < len ? len - d : 0);
        if (e->verbose && strcmp(got, truth))
            fprintf(stderr, "%s #%ld: read '%s', written '%s'\n", touching ? "touching" : "separate", i,
                    cli_text(got), cli_text(truth));
        hcr_line_free(&line);
        hcr_image_free(img);
    }
    return 0;
}

/* One case's accuracies: a line, or an object in root for --json. */
static void eval_report(cJSON *root, const eval_opts *e, int touching, const eval_tally *t)
{
    const double seq = e->count ? (double)t->exact / e->count : 0,
                 chr = t->chars ? (double)t->correct / t->chars : 0;
    const char *name = touching ? "touching" : "separate";
    if (root) {
        cJSON *c = cJSON_AddObjectToObject(root, name);
        cJSON_AddNumberToObject(c, "numbers", (double)e->count);
        cJSON_AddNumberToObject(c, "digits", (double)e->digits);
        cJSON_AddNumberToObject(c, "sequence_accuracy", seq);
        cJSON_AddNumberToObject(c, "character_accuracy", chr);
        cJSON_AddNumberToObject(c, "unreadable", (double)t->failed);
    } else {
        printf("%-9s sequence accuracy %.4f (%ld/%ld)  character accuracy %.4f%s\n",
               touching ? "touching:" : "separate:", seq, t->exact, e->count, chr,
               touching ? "  (one touching pair per number)" : "");
    }
}

static int run_eval(hcr_model *m, const eval_opts *e)
{
    hcr_dataset *test = NULL;
    const char *dataset = cli_dataset_of(e->dataset, m);
    /* The examples' folder first, so a bad one fails before the work. */
    if (e->examples && cli_mkdir_p("read", e->examples)) return 1;
    int rc = cli_load_dataset(dataset, e->data, "test", &test);
    if (rc) return rc;
    if (cli_check_classes(m, test)) {
        hcr_dataset_free(test);
        return 1;
    }
    cJSON *root = e->json ? cJSON_CreateObject() : NULL;
    if (!e->json)
        printf("Sequences of %ld characters composed from %s test images (seed %ld), %ld per case\n",
               e->digits, cli_text(dataset), e->seed, e->count);
    for (int touching = 0; touching <= 1 && !rc; touching++) {
        eval_tally t;
        if ((rc = eval_case(m, test, e, touching, &t))) break;
        eval_report(root, e, touching, &t);
    }
    if (root) {
        if (!rc) {
            char *text = cJSON_Print(root);
            if (text) cli_puts_json(text);
            cJSON_free(text);
        }
        cJSON_Delete(root);
    }
    hcr_dataset_free(test);
    return rc;
}

/* Everything hcr read's command line says. */
typedef struct read_opts {
    eval_opts e;
    double min_conf;
    const char *dump;
    bool eval;
} read_opts;

/* Parse and check the command line; -1 to go on, else the exit status. */
static int parse_read(int argc, char **argv, read_opts *o)
{
    static const struct option lopts[] = {
        {"json", no_argument, 0, 'j'},
        {"min-confidence", required_argument, 0, 'c'},
        {"dump-preprocessed", required_argument, 0, 'd'},
        {"eval", no_argument, 0, 'e'},
        {"data", required_argument, 0, 'D'},
        {"dataset", required_argument, 0, 'S'},
        {"count", required_argument, 0, 'n'},
        {"digits", required_argument, 0, 'g'},
        {"seed", required_argument, 0, 's'},
        {"save-examples", required_argument, 0, 'x'},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    eval_opts *e = &o->e;
    *o = (read_opts){{NULL, NULL, NULL, 1000, 4, 1, false, false}, 0.5, NULL, false};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (c) {
        case 'j': e->json = true; break;
        case 'c': if (!cli_float("read", "--min-confidence", optarg, 0, 1, &o->min_conf)) return 2; break;
        case 'd': o->dump = optarg; break;
        case 'e': o->eval = true; break;
        case 'D': e->data = optarg; break;
        case 'S': e->dataset = optarg; break;
        case 'n': if (!cli_int("read", "--count", optarg, 1, 10000000, &e->count)) return 2; break;
        case 'g': if (!cli_int("read", "--digits", optarg, 1, 64, &e->digits)) return 2; break;
        case 's': if (!cli_int("read", "--seed", optarg, 0, 1000000000, &e->seed)) return 2; break;
        case 'x': e->examples = optarg; break;
        case 'v': e->verbose = true; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option("read", argc, argv, "h", lopts);
        }
    }
    const bool eval = o->eval;
    if (optind >= argc) return cli_usage_error("read", "which model? (hcr read MODEL IMAGE)");
    if (eval && optind + 1 < argc)
        return cli_usage_error("read", "--eval takes no image ('%s')", argv[optind + 1]);
    if (!eval && optind + 1 >= argc) return cli_usage_error("read", "which image? (hcr read MODEL IMAGE)");
    if (!eval && optind + 2 < argc)
        return cli_usage_error("read", "unexpected argument '%s' (one image at a time)", argv[optind + 2]);
    if (eval && e->digits < 2) return cli_usage_error("read", "--eval needs --digits of 2 or more");
    if (!eval && (e->dataset || e->data || e->examples))
        return cli_usage_error("read", "%s is for --eval", e->dataset ? "--dataset" : e->data ? "--data" : "--save-examples");
    if (cli_check_dataset("read", e->dataset, e->data)) return 2;
    return -1;
}

/* --dump-preprocessed: the characters the network saw, side by side;
 * returns 0 or cli_fail's status. */
static int dump_line(const hcr_line *line, const char *path)
{
    int rc = 0;
    uint8_t *strip = malloc((size_t)line->count * 784);
    if (strip) {
        for (int i = 0; i < line->count; i++)
            for (int y = 0; y < 28; y++)
                memcpy(strip + (size_t)y * 28 * line->count + (size_t)i * 28,
                       line->chars[i].pixels + y * 28, 28);
        if (hcr_image_write(path, 28 * line->count, 28, strip)) rc = cli_fail("--dump-preprocessed");
        free(strip);
    }
    return rc;
}

/* --json: the text and, per character, its class, confidence, box and
 * probabilities. */
static void print_line_json(hcr_model *m, const char *shown, const hcr_line *line, double min_conf,
                            bool uncertain)
{
    const int nc = hcr_model_num_classes(m);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "file", shown);
    cJSON_AddStringToObject(root, "text", line->text);
    cJSON_AddBoolToObject(root, "uncertain", uncertain);
    cJSON *arr = cJSON_AddArrayToObject(root, "characters");
    for (int i = 0; i < line->count; i++) {
        const hcr_char *ch = &line->chars[i];
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "char", hcr_model_class_name(m, ch->cls));
        cJSON_AddNumberToObject(it, "confidence", ch->confidence);
        cJSON_AddBoolToObject(it, "uncertain", ch->confidence < min_conf);
        int box[4] = {ch->x, ch->y, ch->w, ch->h};
        cJSON_AddItemToObject(it, "box", cJSON_CreateIntArray(box, 4));
        cJSON *pr = cJSON_AddArrayToObject(it, "probabilities");
        for (int j = 0; j < nc; j++) cJSON_AddItemToArray(pr, cJSON_CreateNumber(ch->probs[j]));
        cJSON_AddItemToArray(arr, it);
    }
    char *text = cJSON_Print(root);
    if (text) cli_puts_json(text);
    cJSON_free(text);
    cJSON_Delete(root);
}

/* Read the line in one image and print it; the exit status. */
static int read_image(hcr_model *m, const char *path, const read_opts *o)
{
    const char *shown = strcmp(path, "-") ? path : "standard input";
    hcr_image *img = NULL;
    hcr_line line;
    if (hcr_image_load(path, &img)) return cli_fail("reading the image");
    if (hcr_read_line(m, img, &line)) {
        fprintf(stderr, "hcr: reading '%s': %s\n", shown, hcr_last_error());
        hcr_image_free(img);
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < line.count; i++)
        if (line.chars[i].confidence < o->min_conf) rc = 3;
    if (o->dump && line.count > 0) {
        int drc = dump_line(&line, o->dump);
        if (drc) rc = drc;
    }
    if (o->e.json) {
        print_line_json(m, shown, &line, o->min_conf, rc == 3);
    } else {
        puts(cli_text(line.text));
        for (int i = 0; i < line.count; i++)
            if (line.chars[i].confidence < o->min_conf)
                fprintf(stderr, "hcr read: character %d ('%s') is uncertain: probability %.3f\n", i + 1,
                        cli_text(hcr_model_class_name(m, line.chars[i].cls)), line.chars[i].confidence);
    }
    hcr_line_free(&line);
    hcr_image_free(img);
    return rc;
}

int cmd_read(int argc, char **argv)
{
    read_opts o;
    int rc = parse_read(argc, argv, &o);
    if (rc >= 0) return rc;
    hcr_model *m = NULL;
    if (cli_load_model(argv[optind], &m)) return 1;
    rc = o.eval ? run_eval(m, &o.e) : read_image(m, argv[optind + 1], &o);
    hcr_model_free(m);
    return rc;
}
