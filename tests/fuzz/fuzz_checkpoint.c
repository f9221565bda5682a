/*
 * fuzz_checkpoint.c - libFuzzer harness for training checkpoints
 * (hcr_checkpoint_load and the resume in hcr_train; src/nn/checkpoint.c): the
 * model part, the optimizer and order tensors, and the "checkpoint" JSON
 * (config, position, random streams, running sums, history).
 *
 * Input: a whole checkpoint file. When it loads and is small, the run is
 * resumed for a few steps on a made-up dataset of the size the checkpoint
 * expects (blank images, labels in turn), with the checkpoint written again
 * when the callback stops it; that new checkpoint must load.
 */
#include "fuzz_common.h"
#include "nn/model.h"

static char input_path[300], work_path[300];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_path(input_path, sizeof input_path, "input.ckpt");
    fuzz_path(work_path, sizeof work_path, "work.ckpt");
    hcr_set_threads(1);
    return 0;
}

static int stop_after_three(void *user, const hcr_progress *p)
{
    (void)p;
    return ++*(int *)user >= 3;
}

/* The number of training images the checkpoint's order covers. */
static size_t order_length(const char *path)
{
    model_extra x[3] = {{"optimizer.m", "F32", NULL, 0}, {"optimizer.v", "F32", NULL, 0},
                        {"train.order", "I32", NULL, 0}};
    hcr_model *m = NULL;
    size_t n = 0;
    if (modelfile_load(path, &m, x, 3) == HCR_OK) n = x[2].count;
    hcr_model_free(m);
    for (int i = 0; i < 3; i++) free(x[i].data);
    return n;
}

/* Resume for a few steps; the checkpoint saved on stopping must load. */
static void resume(hcr_model *m, hcr_train_config cfg)
{
    const int rows = hcr_model_input_rows(m), cols = hcr_model_input_cols(m), k = hcr_model_num_classes(m);
    const size_t count = order_length(input_path);
    if (count == 0 || count > 512 || (size_t)rows * cols > 1024 || hcr_model_param_count(m) > 50000) return;
    hcr_dataset ds = {.count = (int)count, .rows = rows, .cols = cols, .num_classes = k};
    ds.pixels = calloc(count * (size_t)rows * cols, 1);
    ds.labels = malloc(count);
    for (size_t i = 0; ds.labels && i < count; i++) ds.labels[i] = (uint8_t)(i % (size_t)k);
    /* Work on a copy, so that the stop's checkpoint does not replace the input. */
    FILE *in = fopen(input_path, "rb"), *out = fopen(work_path, "wb");
    char buf[4096];
    size_t got;
    while (in && out && (got = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, got, out);
    if (in) fclose(in);
    if (out) fclose(out);
    cfg.checkpoint = work_path;
    cfg.threads = 1;
    int calls = 0;
    hcr_status s = ds.pixels && ds.labels ? hcr_train(m, &ds, NULL, &cfg, stop_after_three, &calls, NULL)
                                          : HCR_ENOMEM;
    FUZZ_CHECK(s == HCR_OK || hcr_last_error()[0], "status %d without a message", (int)s);
    if (s == HCR_EINTERRUPTED) {
        hcr_model *again = NULL;
        hcr_train_config c2;
        FUZZ_CHECK(hcr_checkpoint_load(work_path, &again, &c2) == HCR_OK,
                   "a checkpoint written on stopping does not load: %s", hcr_last_error());
        hcr_model_free(again);
    }
    unlink(work_path);
    free(ds.pixels);
    free(ds.labels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write(input_path, data, size);
    hcr_model *m = (hcr_model *)&m;
    hcr_train_config cfg;
    hcr_status s = hcr_checkpoint_load(input_path, &m, &cfg);
    if (s != HCR_OK) {
        FUZZ_CHECK(m == NULL, "a failed load returned a model");
        FUZZ_CHECK(hcr_last_error()[0], "status %d without a message", (int)s);
        return 0;
    }
    FUZZ_CHECK(cfg.resume == 1 && cfg.checkpoint == input_path, "the config does not say resume");
    FUZZ_CHECK(hcr_model_get_meta(m, "checkpoint") == NULL, "the checkpoint entry stays in the model");
    resume(m, cfg);
    hcr_model_free(m);
    return 0;
}
