/*
 * main.c - the hcr program: dispatches to one command per file.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

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
    "\n"
    "Run 'hcr <command> --help' for a command's options.\n"
    "hcr --version prints the version.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("hcr %s\n", HCR_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "summary")) return cmd_summary(argc - 1, argv + 1);
    if (!strcmp(cmd, "data")) return cmd_data(argc - 1, argv + 1);
    if (!strcmp(cmd, "report")) return cmd_report(argc - 1, argv + 1);
    if (!strcmp(cmd, "show")) return cmd_show(argc - 1, argv + 1);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc - 1, argv + 1);
    if (!strcmp(cmd, "read")) return cmd_read(argc - 1, argv + 1);
    fprintf(stderr, "hcr: unknown command '%s'\n\n%s", cmd, usage);
    return 2;
}
