/*
 * cmd_summary.c - hcr summary: the Keras-style layer table of a saved model
 * or of an architecture spec.
 */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>

static const char help[] =
    "usage: hcr summary [MODEL] [options]\n"
    "\n"
    "Print the layer table (layer, output shape, parameters) of a saved model, or\n"
    "of an architecture spec (the reference CNN when neither is given).\n"
    "\n"
    "options:\n"
    "  --arch SPEC     architecture: a spec or a preset name, as for hcr train\n"
    "                  (default, wide, wide-bn; default " HCR_DEFAULT_SPEC ")\n"
    "  --classes N     output classes for --arch (default 10)\n"
    "  --size N        input image size N x N for --arch (default 28)\n"
    "  -h, --help      this help\n";

int cmd_summary(int argc, char **argv)
{
    static const struct option opts[] = {
        {"arch", required_argument, 0, 'a'}, {"classes", required_argument, 0, 'c'},
        {"size", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *arch = NULL;
    long classes = 10, size = 28;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': arch = optarg; break;
        case 'c': if (!cli_int("summary", "--classes", optarg, 2, 1000, &classes)) return 2; break;
        case 's': if (!cli_int("summary", "--size", optarg, 1, 4096, &size)) return 2; break;
        case 'h': fputs(help, stdout); return 0;
        default: return cli_bad_option("summary", argc, argv, "h", opts);
        }
    }
    if (optind + 1 < argc) return cli_usage_error("summary", "unexpected argument '%s'", argv[optind + 1]);
    if (optind < argc && arch) return cli_usage_error("summary", "give a MODEL or --arch, not both");
    if (arch && hcr_arch_preset(arch)) arch = hcr_arch_preset(arch); /* as train does */
    hcr_model *m = NULL;
    if (optind < argc) {
        if (cli_load_model(argv[optind], &m)) return 1;
    } else if (hcr_model_create(arch ? arch : HCR_DEFAULT_SPEC, (int)size, (int)size, (int)classes, 0, &m)) {
        return cli_fail("--arch");
    }
    hcr_model_summary(m, stdout);
    hcr_model_free(m);
    return 0;
}
