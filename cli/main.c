/*
 * main.c - the hcr program: dispatches to one command per file.
 */
#include "cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Fontconfig (under cairo's toy text API, used by the report) keeps its
 * configuration for the life of the process, and stores pointers as
 * encoded offsets, so LeakSanitizer reports those blocks as lost at exit.
 * This hook, read only by sanitizer builds, tells it so; leaks anywhere
 * else are still reported. It belongs to the program, not the library. */
const char *__lsan_default_suppressions(void) __attribute__((used));
const char *__lsan_default_suppressions(void) { return "leak:libfontconfig.so\n"; }
const char *__lsan_default_options(void) __attribute__((used));
const char *__lsan_default_options(void) { return "print_suppressions=0"; }

static const char usage[] =
    "usage: hcr <command> [options]\n"
    "\n"
    "Handwritten character recognition: train, evaluate and inspect convolutional\n"
    "networks on MNIST-style data.\n"
    "\n"
    "commands:\n"
    "  train      train a model (default: the reference CNN on MNIST, 10 epochs)\n"
    "  eval       test loss, accuracy, confusion matrix and per-class scores of a model\n"
    "  summary    the layer table of a model or an architecture spec\n"
    "  data       fetch datasets into the cache (hcr data fetch mnist)\n"
    "  report     the pictures and HTML report of a model (curves, confusion matrix...)\n"
    "  show       print a few images in the terminal with their labels\n"
    "  predict    recognise the handwritten character in image files (PNG, JPEG...)\n"
    "  read       read a handwritten number from an image (hcr read --eval: accuracy)\n"
    "  serve      a web page to write on and a JSON API over HTTP (hcr serve MODEL)\n"
    "\n"
    "Run 'hcr <command> --help' (or 'hcr help <command>') for a command's options.\n"
    "hcr --version prints the version.\n";

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"train", cmd_train},     {"eval", cmd_eval}, {"summary", cmd_summary}, {"data", cmd_data},
    {"report", cmd_report},   {"show", cmd_show}, {"predict", cmd_predict}, {"read", cmd_read},
    {"serve", cmd_serve},
};
#define NCOMMANDS ((int)(sizeof commands / sizeof commands[0]))

static int find_command(const char *name)
{
    for (int i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i].name, name)) return i;
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    /* Option errors are reported by the commands, one line each
     * (cli_bad_option), not by getopt as well. */
    opterr = 0;
    /* A file size limit (ulimit -f) makes a write fail with EFBIG, which
     * the writers report naming the file, instead of killing the program
     * half-way through a save. */
    signal(SIGXFSZ, SIG_IGN);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") && argc >= 3) {
        /* hcr help CMD: CMD's own help, as hcr CMD --help */
        int i = find_command(argv[2]);
        if (argc > 3 || i < 0) {
            if (argc > 3)
                fprintf(stderr, "hcr help: one command at a time ('%s' too)\n", cli_text(argv[3]));
            else
                fprintf(stderr, "hcr help: unknown command '%s' (the commands: train, eval, summary, "
                                "data, report, show, predict, read, serve)\n", cli_text(argv[2]));
            fputs("Run 'hcr --help' for usage.\n", stderr);
            return 2;
        }
        char *help_argv[] = {argv[2], "--help", NULL};
        return commands[i].run(2, help_argv);
    }
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("hcr %s\n", HCR_VERSION);
        return 0;
    }
    int i = find_command(cmd);
    if (i >= 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "hcr: unknown command '%s'\n\n%s", cli_text(cmd), usage);
    return 2;
}
