/*
 * metrics.c - evaluation of a model on a labelled set: loss, accuracy,
 * confusion matrix, per-class precision, recall and F1.
 */
#include "nn/metrics.h"

#include <stdlib.h>
#include <string.h>

#define EVAL_BATCH 256

hcr_status model_eval_dataset(hcr_model *m, const hcr_dataset *ds, int batch, double *loss,
                              double *accuracy, int *confusion)
{
    if (batch < 1) batch = 1;
    if (batch > ds->count) batch = ds->count;
    if (batch > m->capacity) {
        hcr_status s = model_reserve(m, batch);
        if (s) return s;
    }
    const size_t sz = (size_t)m->rows * m->cols;
    const int k = m->num_classes;
    double loss_sum = 0;
    long correct = 0;
    for (int start = 0; start < ds->count; start += batch) {
        int n = ds->count - start < batch ? ds->count - start : batch;
        model_load_input(m, ds->pixels + (size_t)start * sz, NULL, n);
        model_forward(m, n, 0, NULL);
        hcr_status s = model_output_check(m, n, start);
        if (s) return s;
        int c = 0;
        loss_sum += model_loss(m, n, ds->labels + start, &c) * n;
        correct += c;
        if (confusion) {
            for (int b = 0; b < n; b++) {
                const float *p = m->probs + (size_t)b * k;
                int best = 0;
                for (int i = 1; i < k; i++)
                    if (p[i] > p[best]) best = i;
                confusion[ds->labels[start + b] * k + best]++;
            }
        }
    }
    *loss = loss_sum / ds->count;
    *accuracy = (double)correct / ds->count;
    return HCR_OK;
}

void hcr__metrics_from_confusion(const int *confusion, int k, double *precision, double *recall,
                            double *f1, int *support)
{
    for (int c = 0; c < k; c++) {
        long tp = confusion[c * k + c], predicted = 0, actual = 0;
        for (int i = 0; i < k; i++) {
            predicted += confusion[i * k + c];
            actual += confusion[c * k + i];
        }
        double p = predicted ? (double)tp / predicted : 0.0;
        double r = actual ? (double)tp / actual : 0.0;
        precision[c] = p;
        recall[c] = r;
        f1[c] = p + r > 0 ? 2 * p * r / (p + r) : 0.0;
        support[c] = (int)actual;
    }
}

hcr_status hcr_evaluate(hcr_model *m, const hcr_dataset *ds, int threads, hcr_eval *out)
{
    memset(out, 0, sizeof *out);
    if (!m) return hcr__fail(HCR_EINVAL, "hcr_evaluate: no model");
    hcr_status s = hcr__check_dataset(m, ds, "evaluation");
    if (s) return s;
    const int k = m->num_classes;
    out->num_classes = k;
    out->count = ds->count;
    out->confusion = calloc((size_t)k * k, sizeof(int));
    out->precision = calloc((size_t)k, sizeof(double));
    out->recall = calloc((size_t)k, sizeof(double));
    out->f1 = calloc((size_t)k, sizeof(double));
    out->support = calloc((size_t)k, sizeof(int));
    if (!out->confusion || !out->precision || !out->recall || !out->f1 || !out->support) {
        hcr_eval_free(out);
        return hcr__fail(HCR_ENOMEM, "out of memory");
    }
    /* On a view, like a prediction: other threads may use the model too.
     * A fixed batch, so a model scores the same before and after a save. */
    hcr_model *v;
    if (!(s = model_view_acquire(m, &v))) {
        v->threads = threads;
        s = model_eval_dataset(v, ds, EVAL_BATCH, &out->loss, &out->accuracy, out->confusion);
        v->threads = 0;
        model_view_release(m, v);
    }
    if (s) {
        hcr_eval_free(out);
        return s;
    }
    hcr__metrics_from_confusion(out->confusion, k, out->precision, out->recall, out->f1, out->support);
    return HCR_OK;
}

void hcr_eval_free(hcr_eval *e)
{
    if (!e) return;
    free(e->confusion);
    free(e->precision);
    free(e->recall);
    free(e->f1);
    free(e->support);
    memset(e, 0, sizeof *e);
}

hcr_status hcr__check_dataset(const hcr_model *m, const hcr_dataset *ds, const char *what)
{
    if (!ds || ds->count <= 0) return hcr__fail(HCR_EINVAL, "the %s set is empty", what);
    if (!ds->pixels || !ds->labels)
        return hcr__fail(HCR_EINVAL, "the %s set has no pixels or no labels", what);
    if (ds->rows != m->rows || ds->cols != m->cols)
        return hcr__fail(HCR_EINVAL, "the %s images are %dx%d but the model takes %dx%d", what,
                        ds->rows, ds->cols, m->rows, m->cols);
    for (int i = 0; i < ds->count; i++)
        if (ds->labels[i] >= m->num_classes)
            return hcr__fail(HCR_EINVAL,
                            "the %s set has label %d (image %d) but the model has %d classes", what,
                            ds->labels[i], i, m->num_classes);
    return HCR_OK;
}
