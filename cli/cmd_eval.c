/*
 * cmd_eval.c - hcr eval: a saved model's loss, accuracy, confusion matrix
 * and per-class precision, recall and F1 on the MNIST test set, as tables
 * or as JSON.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: hcr eval MODEL [options]\n"
    "\n"
    "Evaluate a saved model on a test set (by default the one of the dataset it was\n"
    "trained on): loss, accuracy, the confusion matrix (rows: true class, columns:\n"
    "predicted) and per-class precision, recall and F1, with the class names.\n"
    "\n"
    "options:\n"
    CLI_DATASET_HELP
    "  --data DIR     the dataset's files in DIR; default: the cache (or a system\n"
    "                 copy), fetched when missing\n"
    "  --limit N      only the first N test images\n"
    "  --threads N    threads (default: all cores)\n"
    "  --json         machine-readable output\n"
    "  -h, --help     this help\n";

static void print_tables(const char *path, const hcr_model *m, const hcr_eval *ev)
{
    const int k = ev->num_classes;
    printf("Model: %s (%s)\n", path, cli_text(hcr_model_spec(m)));
    printf("Test images: %d\nTest loss: %.4f\nTest accuracy: %.4f\n\n", ev->count, ev->loss,
           ev->accuracy);
    printf("Confusion matrix (rows: true class, columns: predicted class)\n%6s", "");
    for (int j = 0; j < k; j++) printf(" %5.5s", cli_text(hcr_model_class_name(m, j)));
    printf("\n");
    for (int i = 0; i < k; i++) {
        printf("%6.6s", cli_text(hcr_model_class_name(m, i)));
        for (int j = 0; j < k; j++) printf(" %5d", ev->confusion[i * k + j]);
        printf("\n");
    }
    printf("\n%-8s %9s %9s %9s %9s\n", "class", "precision", "recall", "f1", "support");
    double mp = 0, mr = 0, mf = 0;
    for (int i = 0; i < k; i++) {
        printf("%-8.8s %9.4f %9.4f %9.4f %9d\n", cli_text(hcr_model_class_name(m, i)), ev->precision[i],
               ev->recall[i], ev->f1[i], ev->support[i]);
        mp += ev->precision[i];
        mr += ev->recall[i];
        mf += ev->f1[i];
    }
    printf("%-8s %9.4f %9.4f %9.4f %9d\n", "macro", mp / k, mr / k, mf / k, ev->count);
}

static int print_json(const char *path, const hcr_model *m, const hcr_eval *ev)
{
    const int k = ev->num_classes;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", path);
    cJSON_AddStringToObject(root, "spec", hcr_model_spec(m));
    cJSON_AddNumberToObject(root, "images", ev->count);
    cJSON_AddNumberToObject(root, "loss", ev->loss);
    cJSON_AddNumberToObject(root, "accuracy", ev->accuracy);
    cJSON *names = cJSON_AddArrayToObject(root, "classes");
    cJSON *conf = cJSON_AddArrayToObject(root, "confusion");
    cJSON *per = cJSON_AddArrayToObject(root, "per_class");
    for (int i = 0; i < k; i++) {
        cJSON_AddItemToArray(names, cJSON_CreateString(hcr_model_class_name(m, i)));
        cJSON_AddItemToArray(conf, cJSON_CreateIntArray(ev->confusion + i * k, k));
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "class", hcr_model_class_name(m, i));
        cJSON_AddNumberToObject(c, "precision", ev->precision[i]);
        cJSON_AddNumberToObject(c, "recall", ev->recall[i]);
        cJSON_AddNumberToObject(c, "f1", ev->f1[i]);
        cJSON_AddNumberToObject(c, "support", ev->support[i]);
        cJSON_AddItemToArray(per, c);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        fprintf(stderr, "hcr eval: out of memory\n");
        return 1;
    }
    cli_puts_json(text);
    cJSON_free(text);
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'}, {"dataset", required_argument, 0, 'D'},    {"limit", required_argument, 0, 'n'},
        {"threads", required_argument, 0, 't'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    const char *data = NULL, *dataset = NULL;
    long limit = 0, threads = 0;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'D': dataset = optarg; break;
        case 'n': if (!cli_int("eval", "--limit", optarg, 1, 1000000000, &limit)) return 2; break;
        case 't': if (!cli_int("eval", "--threads", optarg, 0, 1024, &threads)) return 2; break;
        case 'j': json = true; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option("eval", argc, argv, "h", opts);
        }
    }
    if (optind >= argc) return cli_usage_error("eval", "which model? (hcr eval MODEL)");
    if (optind + 1 < argc) return cli_usage_error("eval", "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];
    if (cli_check_dataset("eval", dataset, data)) return 2;

    hcr_model *m = NULL;
    hcr_dataset *test = NULL, *part = NULL;
    hcr_eval ev = {0};
    int rc = 1;
    if (cli_load_model(path, &m)) return 1;
    if ((rc = cli_load_dataset(cli_dataset_of(dataset, m), data, "test", &test)) != 0) goto done;
    rc = 1;
    if (cli_check_classes(m, test)) goto done;
    const hcr_dataset *use = test;
    if (limit > 0 && limit < test->count) {
        if (hcr_dataset_slice(test, 0, (int)limit, &part)) {
            cli_fail("--limit");
            goto done;
        }
        use = part;
    }
    if (hcr_evaluate(m, use, (int)threads, &ev)) {
        cli_fail("evaluating");
        goto done;
    }
    rc = json ? print_json(path, m, &ev) : (print_tables(path, m, &ev), 0);
done:
    hcr_eval_free(&ev);
    hcr_dataset_free(part);
    hcr_dataset_free(test);
    hcr_model_free(m);
    return rc;
}
