/*
 * cli.h - shared pieces of the hcr command-line program: the commands'
 * entry points and small helpers for options, data and output. The
 * program is a thin layer over libhcr (include/hcr.h).
 */
#ifndef HCR_CLI_H
#define HCR_CLI_H

#include "hcr.h"

#include <stdbool.h>

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_read(int argc, char **argv);

/* The default report folder of a model: the path with _report in place of
 * .safetensors (cmd_report.c). */
void cli_report_dir(const char *model_path, char *buf, size_t n);

/* Print "hcr: <what>: <library message>" to stderr; returns 1. */
int cli_fail(const char *what);
/* Print "hcr <cmd>: <printf message>" and a hint to run --help; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict number parsing for option values; print an error and return false
 * on anything but a whole number in [lo, hi] (or a finite float). */
bool cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
bool cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);

/* Load split "train" or "test" of dataset `name` (a known name or
 * idx:DIR) from data_dir, or from its default place (the cache, or a
 * system copy), fetching it first when it is missing or damaged (saying so
 * on stderr). Prints the error and returns 1 on failure. */
int cli_load_dataset(const char *name, const char *data_dir, const char *split, hcr_dataset **out);

/* The dataset a command uses: --dataset if given, else the one the model
 * was trained on (its "dataset" metadata), else mnist. */
const char *cli_dataset_of(const char *option, const hcr_model *m);

/* The dataset's classes are the model's: the same count, and the same
 * names where both have names. Prints the error and returns 1 if not. */
int cli_check_classes(const hcr_model *m, const hcr_dataset *ds);

/* The help text shared by the commands' --dataset and --data options. */
#define CLI_DATASET_HELP                                                                    \
    "  --dataset NAME  mnist, fashion-mnist, kmnist, emnist-letters, emnist-balanced,\n"    \
    "                  emnist-digits, emnist-byclass, or idx:DIR for any folder with a\n" \
    "                  train and a test pair of IDX files (hcr data list shows them)\n"

/* Ctrl-C: the first press sets the flag (the command finishes cleanly),
 * the second ends the program. */
void cli_catch_interrupt(void);
bool cli_interrupted(void);

#endif
