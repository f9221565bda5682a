/*
 * cmd_report.c - hcr report: (re)build the report folder of a saved model:
 * the learning curves, sample test images, the confusion matrix, the most
 * confident mistakes (PNG files) and report.html holding all of them.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char help[] =
    "usage: hcr report MODEL [options]\n"
    "\n"
    "Write the pictures of a saved model and one self-contained HTML page with them\n"
    "into a folder: accuracy.png, loss.png (training and validation per epoch),\n"
    "samples.png (test images with true and predicted labels), confusion.png (the\n"
    "confusion matrix as a heat map), misclassified.png (the most confident\n"
    "mistakes) and report.html (all of the above, the model, the recipe, per-class\n"
    "precision/recall/F1, the history and timings). hcr train writes it too.\n"
    "\n"
    "options:\n"
    CLI_DATASET_HELP
    "                  (default: the dataset the model was trained on)\n"
    "  --data DIR     the dataset's files in DIR; default: the cache (or a system\n"
    "                 copy), fetched when missing\n"
    "  --out DIR      the folder (default: the model path with _report in place of\n"
    "                 .safetensors)\n"
    "  --threads N    threads (default: all cores)\n"
    "  -h, --help     this help\n";

void cli_report_dir(const char *model_path, char *buf, size_t n)
{
    size_t len = strlen(model_path);
    const char *ext = ".safetensors";
    size_t e = strlen(ext);
    if (len > e && !strcmp(model_path + len - e, ext))
        snprintf(buf, n, "%.*s_report", (int)(len - e), model_path);
    else
        snprintf(buf, n, "%s_report", model_path);
}

int cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},    {"out", required_argument, 0, 'o'},
        {"dataset", required_argument, 0, 'D'},
        {"threads", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *data = NULL, *out = NULL, *dataset = NULL;
    long threads = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'D': dataset = optarg; break;
        case 'o': out = optarg; break;
        case 't': if (!cli_int("report", "--threads", optarg, 0, 1024, &threads)) return 2; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option("report", argc, argv, "h", opts);
        }
    }
    if (optind >= argc) return cli_usage_error("report", "which model? (hcr report MODEL)");
    if (optind + 1 < argc) return cli_usage_error("report", "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];
    if (cli_check_dataset("report", dataset, data)) return 2;
    char dir[4200];
    if (out)
        snprintf(dir, sizeof dir, "%s", out);
    else
        cli_report_dir(path, dir, sizeof dir);

    hcr_model *m = NULL;
    hcr_dataset *test = NULL;
    int rc = 1;
    if (cli_load_model(path, &m)) return 1;
    if ((rc = cli_load_dataset(cli_dataset_of(dataset, m), data, "test", &test)) != 0) goto done;
    rc = 1;
    if (cli_check_classes(m, test)) goto done;
    hcr_set_threads((int)threads);
    if (hcr_report_write(m, test, dir)) {
        cli_fail("writing the report");
        goto done;
    }
    printf("Report written to %s/report.html\n", dir);
    rc = 0;
done:
    hcr_dataset_free(test);
    hcr_model_free(m);
    return rc;
}
