/*
 * cmd_show.c - hcr show: a few images of the data set drawn in the
 * terminal with Unicode shades, each with its label, for a quick look over
 * SSH. One character covers two pixel rows, so a 28x28 digit takes 28
 * columns and 14 lines.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const char help[] =
    "usage: hcr show [options]\n"
    "\n"
    "Print images of a dataset in the terminal (Unicode shades, two pixel rows per\n"
    "character) with their class names.\n"
    "\n"
    "options:\n"
    CLI_DATASET_HELP
    "                  (default mnist)\n"
    "  --data DIR           the dataset's files in DIR; default: the cache (or a\n"
    "                       system copy), fetched when missing\n"
    "  -n N                 how many images (default 8)\n"
    "  --split train|test   which set (default test)\n"
    "  --start I            the first image's index (default 0)\n"
    "  -h, --help           this help\n";

/* Lightest to darkest ink: the image's 0..255 (0 = background). */
static const char *const shades[] = {" ", "\u2591", "\u2592", "\u2593", "\u2588"};

static int term_width(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    const char *c = getenv("COLUMNS");
    int v = c ? atoi(c) : 0;
    return v > 0 ? v : 80;
}

int cmd_show(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},  {"split", required_argument, 0, 's'},
        {"start", required_argument, 0, 'i'}, {"help", no_argument, 0, 'h'},
        {"dataset", required_argument, 0, 'D'},
        {0, 0, 0, 0},
    };
    const char *data = NULL, *split = "test", *dataset = "mnist";
    long count = 8, start = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'D': dataset = optarg; break;
        case 'n': if (!cli_int("show", "-n", optarg, 1, 10000, &count)) return 2; break;
        case 's': split = optarg; break;
        case 'i': if (!cli_int("show", "--start", optarg, 0, 1000000000, &start)) return 2; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option("show", argc, argv, "n:h", opts);
        }
    }
    if (optind < argc) return cli_usage_error("show", "unexpected argument '%s'", argv[optind]);
    if (strcmp(split, "test") && strcmp(split, "train"))
        return cli_usage_error("show", "--split: '%s' is neither train nor test", split);

    if (cli_check_dataset("show", dataset, data)) return 2;

    hcr_dataset *ds = NULL;
    int rc = cli_load_dataset(dataset, data, split, &ds);
    if (rc) return rc;
    if (start >= ds->count) {
        fprintf(stderr, "hcr show: --start %ld is past the last image (%d in the %s set)\n", start,
                ds->count - 1, split);
        hcr_dataset_free(ds);
        return 2;
    }
    if (count > ds->count - start) count = ds->count - start;

    const int cols = ds->cols, lines = (ds->rows + 1) / 2, gap = 3;
    int per_row = (term_width() + gap) / (cols + gap);
    if (per_row < 1) per_row = 1;
    const size_t sz = (size_t)ds->rows * ds->cols;
    for (long first = start; first < start + count; first += per_row) {
        long last = first + per_row < start + count ? first + per_row : start + count;
        /* The labels over the images. */
        for (long i = first; i < last; i++) {
            char head[64];
            snprintf(head, sizeof head, "#%ld  label %s", i, cli_text(hcr_dataset_class_name(ds, ds->labels[i])));
            printf("%-*.*s%s", cols, cols, head, i + 1 < last ? "   " : "\n");
        }
        for (int l = 0; l < lines; l++) {
            for (long i = first; i < last; i++) {
                const uint8_t *px = ds->pixels + (size_t)i * sz;
                for (int x = 0; x < cols; x++) {
                    int top = px[(2 * l) * cols + x];
                    int bottom = 2 * l + 1 < ds->rows ? px[(2 * l + 1) * cols + x] : 0;
                    int v = (top + bottom) / 2; /* 0..255 */
                    fputs(shades[(v * 5) / 256], stdout);
                }
                fputs(i + 1 < last ? "   " : "\n", stdout);
            }
        }
        if (last < start + count) putchar('\n');
    }
    hcr_dataset_free(ds);
    return 0;
}
