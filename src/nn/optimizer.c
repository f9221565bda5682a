/*
 * optimizer.c - Adam with Keras's update rule and defaults (see
 * optimizer.h). The update is element-wise, so splitting it across threads
 * cannot change the result.
 */
#include "nn/optimizer.h"

#include <math.h>
#include <stdlib.h>

hcr_status adam_init(adam *a, size_t n, float lr, float beta1, float beta2, float epsilon)
{
    if (!(lr > 0) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(epsilon > 0))
        return hcr__fail(HCR_EINVAL,
                        "Adam needs lr > 0, 0 <= beta1, beta2 < 1 and epsilon > 0 "
                        "(got lr %g, beta1 %g, beta2 %g, epsilon %g)",
                        lr, beta1, beta2, epsilon);
    a->lr = lr;
    a->beta1 = beta1;
    a->beta2 = beta2;
    a->epsilon = epsilon;
    a->step = 0;
    a->n = n;
    a->m = calloc(n ? n : 1, sizeof(float));
    a->v = calloc(n ? n : 1, sizeof(float));
    if (!a->m || !a->v) {
        adam_free(a);
        return hcr__fail(HCR_ENOMEM, "out of memory for the optimizer state");
    }
    return HCR_OK;
}

void adam_step(adam *a, float *params, const float *grads)
{
    a->step++;
    const double t = (double)a->step;
    const float lr_t = (float)(a->lr * sqrt(1.0 - pow(a->beta2, t)) / (1.0 - pow(a->beta1, t)));
    const float b1 = a->beta1, b2 = a->beta2, eps = a->epsilon;
    float *m = a->m, *v = a->v;
    const long n = (long)a->n;
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        params[i] -= lr_t * m[i] / (sqrtf(v[i]) + eps);
    }
}

void adam_free(adam *a)
{
    free(a->m);
    free(a->v);
    a->m = a->v = NULL;
}
