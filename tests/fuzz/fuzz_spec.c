/*
 * fuzz_spec.c - libFuzzer harness for the architecture spec parser
 * (hcr_spec_check and hcr_model_create, src/nn/model.c).
 *
 * Input: 6 bytes of sizes, then the spec text (no NUL needed).
 *   bytes 0-1  rows    = 1 + (big-endian value % 4200)  (past 4096 to test the limit)
 *   bytes 2-3  cols    likewise
 *   bytes 4-5  classes = big-endian value % 1100
 * hcr_spec_check must agree with hcr_model_create (same verdict, same
 * parameter count). Models of at most 2 M parameters are built; of those,
 * the ones whose forward pass is cheap (pixels x parameters <= 4 M) also
 * predict one blank image (probabilities must sum to 1).
 */
#include "fuzz_common.h"

#include <math.h>

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    devnull = fopen("/dev/null", "w");
    hcr_set_threads(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6 || size > 4096) return 0;
    const int rows = 1 + (int)(((unsigned)data[0] << 8 | data[1]) % 4200);
    const int cols = 1 + (int)(((unsigned)data[2] << 8 | data[3]) % 4200);
    const int nc = (int)(((unsigned)data[4] << 8 | data[5]) % 1100);
    char *spec = malloc(size - 6 + 1);
    if (!spec) return 0;
    memcpy(spec, data + 6, size - 6);
    spec[size - 6] = '\0';

    size_t np = 0;
    hcr_status s = hcr_spec_check(spec, rows, cols, nc, &np);
    FUZZ_CHECK(s == HCR_OK || hcr_last_error()[0], "failure without a message");
    if (s == HCR_OK && np <= 2000000) {
        hcr_model *m = NULL;
        hcr_status c = hcr_model_create(spec, rows, cols, nc, 1, &m);
        FUZZ_CHECK(c == HCR_OK, "spec '%s' %dx%d %d classes: checked but not built: %s", spec, rows,
                   cols, nc, hcr_last_error());
        FUZZ_CHECK(hcr_model_param_count(m) == np, "check says %zu parameters, the model has %zu", np,
                   hcr_model_param_count(m));
        FUZZ_CHECK(hcr_model_num_classes(m) == nc, "classes");
        hcr_model_summary(m, devnull);
        /* A forward pass when it is cheap: small input, few parameters. */
        if ((double)rows * cols * (double)np <= 4e6) { /* bounds the multiply-adds */
            uint8_t *px = calloc((size_t)rows * cols, 1);
            float *p = malloc(sizeof *p * (size_t)nc);
            if (px && p && hcr_model_predict(m, px, 1, p) == HCR_OK) {
                double sum = 0;
                for (int i = 0; i < nc; i++) sum += p[i];
                FUZZ_CHECK(isfinite(sum) && fabs(sum - 1) < 1e-3, "probabilities sum to %g", sum);
            }
            free(px);
            free(p);
        }
        hcr_model_free(m);
    } else if (s != HCR_OK) {
        hcr_model *m = NULL;
        FUZZ_CHECK(hcr_model_create(spec, rows, cols, nc, 1, &m) != HCR_OK && m == NULL,
                   "spec '%s': refused by the check but built", spec);
    }
    free(spec);
    return 0;
}
