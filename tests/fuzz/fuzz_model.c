/*
 * fuzz_model.c - libFuzzer harness for the safetensors loader
 * (hcr_model_load, src/nn/modelfile.c): the 8-byte header length, the JSON
 * header, its __metadata__ (format, spec, input size, class count, class
 * names) and every tensor entry, then the weights.
 *
 * Input: a whole model file, written to a scratch file and loaded. A model
 * that loads is then used the way the CLI uses one: its summary, its class
 * names, saved again and reloaded (the copy must load and keep its spec and
 * parameter count), and, when it is small, one prediction on a blank image.
 * A prediction either fails with a message (weights near FLT_MAX overflow
 * the logits: hcr_model_predict refuses a NaN or infinite answer) or its
 * probabilities are finite and sum to 1.
 */
#include "fuzz_common.h"
#include "nn/model.h"

#include <math.h>

static char input_path[300], copy_path[300];
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_path(input_path, sizeof input_path, "model.safetensors");
    fuzz_path(copy_path, sizeof copy_path, "copy.safetensors");
    devnull = fopen("/dev/null", "w");
    hcr_set_threads(1);
    return 0;
}

static void use_model(hcr_model *m)
{
    const int nc = hcr_model_num_classes(m), rows = hcr_model_input_rows(m), cols = hcr_model_input_cols(m);
    FUZZ_CHECK(nc >= 2 && nc <= 1000 && rows >= 1 && rows <= 4096 && cols >= 1 && cols <= 4096,
               "%d classes, %dx%d", nc, rows, cols);
    hcr_model_summary(m, devnull);
    for (int i = 0; i < nc; i++) {
        const char *name = hcr_model_class_name(m, i);
        FUZZ_CHECK(name && *name, "class %d has no name", i);
    }
    for (int i = 0; i < hcr_model_meta_count(m); i++) {
        const char *k = hcr_model_meta_key(m, i);
        FUZZ_CHECK(k && hcr_model_get_meta(m, k), "metadata %d", i);
    }

    if (hcr_model_save(m, copy_path) == HCR_OK) {
        hcr_model *c = NULL;
        hcr_status s = hcr_model_load(copy_path, &c);
        FUZZ_CHECK(s == HCR_OK, "a saved model does not load: %s", hcr_last_error());
        FUZZ_CHECK(strcmp(hcr_model_spec(c), hcr_model_spec(m)) == 0 &&
                       hcr_model_param_count(c) == hcr_model_param_count(m),
                   "the copy differs");
        hcr_model_free(c);
        unlink(copy_path);
    }

    /* One prediction, when it is cheap. */
    if ((size_t)rows * cols <= 4096 && hcr_model_param_count(m) <= 200000) {
        uint8_t *px = calloc((size_t)rows * cols, 1);
        float *p = malloc(sizeof *p * (size_t)nc);
        hcr_status s = px && p ? hcr_model_predict(m, px, 1, p) : HCR_ENOMEM;
        if (s == HCR_EFORMAT)
            FUZZ_CHECK(strstr(hcr_last_error(), "overflow float"), "predict failed: %s", hcr_last_error());
        if (s == HCR_OK) {
            double sum = 0;
            for (int i = 0; i < nc; i++) sum += p[i];
            FUZZ_CHECK(isfinite(sum) && fabs(sum - 1) < 1e-3, "probabilities sum to %g", sum);
        }
        free(px);
        free(p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (4u << 20)) return 0;
    fuzz_write(input_path, data, size);
    hcr_model *m = NULL;
    if (hcr_model_load(input_path, &m) == HCR_OK) {
        FUZZ_CHECK(m != NULL, "success without a model");
        use_model(m);
        hcr_model_free(m);
    } else {
        FUZZ_CHECK(m == NULL && hcr_last_error()[0], "failure without a message or with a model");
    }
    return 0;
}
