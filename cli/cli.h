/*
 * cli.h - shared pieces of the hcr command-line program: the commands'
 * entry points and small helpers for options, data and output. The
 * program is a thin layer over libhcr (include/hcr.h).
 */
#ifndef HCR_CLI_H
#define HCR_CLI_H

#include "hcr.h"
#include "hcr_data.h"
#include "hcr_report.h"

#include <getopt.h>
#include <stdbool.h>

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* The default report folder of a model: the path with _report in place of
 * .safetensors (cmd_report.c). */
void cli_report_dir(const char *model_path, char *buf, size_t n);

/* Print "hcr: <what>: <library message>" to stderr; returns 1. */
int cli_fail(const char *what);
/* Print "hcr <cmd>: <printf message>" and a hint to run --help; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What getopt_long's '?' means, as one cli_usage_error line naming the
 * option ("unknown option '--frobnicate'", "option '--arch' needs a
 * value"...); returns 2. getopt's own message is off (main sets opterr to
 * 0), so this is the only line. Call it from the loop's default case with
 * the same optstring and long options. */
int cli_bad_option(const char *cmd, int argc, char **argv, const char *optstring,
                   const struct option *longopts);

/* Check a --dataset value (NULL: not given) before any work: a known name
 * or idx:DIR, and not idx:DIR together with --data DIR (which of the two
 * folders?). Prints a usage error and returns 2, else returns 0. */
int cli_check_dataset(const char *cmd, const char *dataset, const char *data_dir);

/* s made safe to print on a terminal: control characters (C0, DEL, C1)
 * and bytes that are not UTF-8 shown as \n, \t, \r, \xNN (\u00NN for
 * C1), so that a model's class names cannot move the cursor or recolour
 * the terminal. The result is in one of 8 rotating static buffers (use
 * at most 8 in one printf); very long strings are cut and end in "...". */
const char *cli_text(const char *s);
/* The length of the valid UTF-8 sequence at p (1 to 4), 0 if there is none
 * (a stray continuation byte, an overlong lead, a truncated sequence). */
size_t cli_utf8_len(const unsigned char *p);

/* Print cJSON's text and a newline, with C1 control characters and bytes
 * that are not UTF-8 written as \u00XX (cJSON escapes only C0), so the
 * output is valid JSON and safe on a terminal. */
void cli_puts_json(const char *text);

/* mkdir -p; prints "hcr <cmd>: cannot create folder ..." and returns 1 on
 * failure. */
int cli_mkdir_p(const char *cmd, const char *dir);

/* hcr_model_load, refusing a FIFO or a device at once; prints
 * "hcr: loading the model: ..." and returns 1 on failure. */
int cli_load_model(const char *path, hcr_model **m);

/* Open a file the user named for reading: regular files only (a FIFO, a
 * device or a directory is refused at once, without blocking). Returns an
 * fd (O_CLOEXEC, blocking), or -1 with why (size n) set to
 * "<path>: is a FIFO (named pipe), not a regular file" or the like. */
int cli_open_regular(const char *path, char *why, size_t n);

/* Strict number parsing for option values; print an error and return false
 * on anything but a whole number in [lo, hi] (or a finite float). */
bool cli_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
bool cli_float(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);

/* Load split "train" or "test" of dataset `name` (a known name or
 * idx:DIR) from data_dir, or from its default place (the cache, or a
 * system copy), fetching it first when it is missing or damaged (saying so
 * on stderr; Ctrl-C or SIGTERM then cancels the fetch cleanly). For idx:DIR
 * a data_dir replaces DIR (a model trained on idx:DIR whose files have
 * moved); cli_check_dataset refuses both on the command line. Prints the
 * error and returns 1 on failure (130 if a fetch was interrupted). */
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
