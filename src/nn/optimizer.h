/*
 * optimizer.h - Adam, as Keras implements it (optimizer.c).
 */
#ifndef HCR_OPTIMIZER_H
#define HCR_OPTIMIZER_H

#include "core/internal.h"

typedef struct adam {
    float lr, beta1, beta2, epsilon;
    long step;        /* updates done so far                    */
    size_t n;         /* parameters                             */
    float *m, *v;     /* first and second moment estimates      */
} adam;

hcr_status adam_init(adam *a, size_t n, float lr, float beta1, float beta2, float epsilon);
/* One update of params from grads:
 *   t += 1, lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
 *   m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2
 *   w -= lr_t m / (sqrt(v) + epsilon) */
void adam_step(adam *a, float *params, const float *grads);
void adam_free(adam *a);

#endif
