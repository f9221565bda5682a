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

/* Load the train or test split ("train"/"t10k") of MNIST from data_dir, or
 * from the cache, fetching it first when it is missing (saying so on
 * stderr). */
int cli_load_mnist(const char *data_dir, const char *prefix, hcr_dataset **out);

/* Ctrl-C: the first press sets the flag (the command finishes cleanly),
 * the second ends the program. */
void cli_catch_interrupt(void);
bool cli_interrupted(void);

#endif
