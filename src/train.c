/*
 * train.c - the training loop: shuffle, then for each batch forward,
 * loss, backward and an Adam update; validation at the end of each epoch;
 * progress reported through a callback. Reads like the recipe:
 *
 *   for each epoch
 *       shuffle the training images (seeded)
 *       for each batch: forward, loss, backward, adam_step
 *       evaluate on the validation images
 */
#include "model.h"
#include "metrics.h"
#include "optimizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void hcr_train_config_default(hcr_train_config *cfg)
{
    cfg->epochs = 10;
    cfg->batch_size = 128;
    cfg->lr = 0.001f;
    cfg->beta1 = 0.9f;
    cfg->beta2 = 0.999f;
    cfg->epsilon = 1e-7f;
    cfg->seed = 42;
    cfg->threads = 0;
    cfg->shift = 0;
    cfg->flip = 0;
    cfg->lr_schedule = HCR_LR_CONSTANT;
}

float train_lr_at(const hcr_train_config *cfg, long step, long total)
{
    if (cfg->lr_schedule != HCR_LR_COSINE || total <= 0) return cfg->lr;
    return (float)(cfg->lr * 0.5 * (1.0 + cos(M_PI * (double)step / (double)total)));
}

/* Copy image `src` (rows x cols) to dst moved by (dx, dy), blank where it
 * moved away from, mirrored left to right if `flip`. */
void augment_image(uint8_t *dst, const uint8_t *src, int rows, int cols, int dx, int dy,
                          int flip)
{
    for (int y = 0; y < rows; y++) {
        const int sy = y - dy;
        uint8_t *d = dst + (size_t)y * cols;
        if (sy < 0 || sy >= rows) {
            memset(d, 0, (size_t)cols);
            continue;
        }
        const uint8_t *s = src + (size_t)sy * cols;
        for (int x = 0; x < cols; x++) {
            int sx = x - dx;
            if (flip) sx = cols - 1 - sx;
            d[x] = sx >= 0 && sx < cols ? s[sx] : 0;
        }
    }
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}


hcr_status hcr_train(hcr_model *m, const hcr_dataset *train, const hcr_dataset *val,
                     const hcr_train_config *cfg, hcr_progress_fn cb, void *user,
                     hcr_history *history)
{
    if (history) memset(history, 0, sizeof *history);
    if (!m || !cfg) return hcr_fail(HCR_EINVAL, "hcr_train: no model or config");
    if (cfg->epochs < 1 || cfg->epochs > 100000)
        return hcr_fail(HCR_EINVAL, "epochs must be between 1 and 100000 (got %d)", cfg->epochs);
    if (cfg->batch_size < 1 || cfg->batch_size > 65536)
        return hcr_fail(HCR_EINVAL, "batch size must be between 1 and 65536 (got %d)", cfg->batch_size);
    if (cfg->lr_schedule != HCR_LR_CONSTANT && cfg->lr_schedule != HCR_LR_COSINE)
        return hcr_fail(HCR_EINVAL, "unknown learning-rate schedule %d", cfg->lr_schedule);
    if (cfg->shift < 0 || cfg->shift > 8)
        return hcr_fail(HCR_EINVAL, "augmentation shift must be between 0 and 8 pixels (got %d)", cfg->shift);
    hcr_status s = check_dataset(m, train, "training");
    if (s) return s;
    if (val && (s = check_dataset(m, val, "validation"))) return s;

    hcr_set_threads(cfg->threads);
    const int batch = cfg->batch_size < train->count ? cfg->batch_size : train->count;
    if ((s = model_reserve(m, batch))) return s;
    adam opt;
    if ((s = adam_init(&opt, m->nparams, cfg->lr, cfg->beta1, cfg->beta2, cfg->epsilon))) return s;
    int *order = malloc(sizeof(int) * (size_t)train->count);
    uint8_t *labels = malloc((size_t)batch);
    /* With augmentation, each batch's images are altered copies. */
    const bool augment = cfg->shift > 0 || cfg->flip;
    const size_t image = (size_t)train->rows * (size_t)train->cols;
    uint8_t *aug = augment ? malloc(image * (size_t)batch) : NULL;
    int *aug_index = augment ? malloc(sizeof(int) * (size_t)batch) : NULL;
    if (augment && (!aug || !aug_index)) s = HCR_ENOMEM;
    if (history) {
        history->rows = calloc((size_t)cfg->epochs, sizeof *history->rows);
        if (!history->rows) s = HCR_ENOMEM;
    }
    if (!order || !labels || s) {
        free(order);
        free(labels);
        free(aug);
        free(aug_index);
        adam_free(&opt);
        return hcr_fail(HCR_ENOMEM, "out of memory");
    }
    for (int i = 0; i < train->count; i++) order[i] = i;

    /* Two streams from one seed: the shuffle order and the dropout masks. */
    hcr_rng shuffle_rng, dropout_rng, augment_rng;
    hcr_rng_seed(&shuffle_rng, cfg->seed);
    hcr_rng_seed(&dropout_rng, cfg->seed ^ 0x64726f706f7574ULL);
    hcr_rng_seed(&augment_rng, cfg->seed ^ 0x6175676d656e74ULL);
    for (int b = 0; b < batch && aug_index; b++) aug_index[b] = b;

    const int steps = (train->count + batch - 1) / batch;
    s = HCR_OK;
    for (int epoch = 1; epoch <= cfg->epochs && !s; epoch++) {
        double t0 = now_seconds();
        for (int i = train->count - 1; i > 0; i--) {
            int j = (int)hcr_rng_below(&shuffle_rng, (uint32_t)i + 1);
            int tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        double loss_sum = 0;
        long correct_sum = 0, seen = 0;
        hcr_progress p = {0};
        p.epoch = epoch;
        p.epochs = cfg->epochs;
        p.steps = steps;
        for (int step = 0; step < steps; step++) {
            const int start = step * batch;
            const int n = train->count - start < batch ? train->count - start : batch;
            if (augment) {
                const uint32_t span = 2u * (uint32_t)cfg->shift + 1u;
                for (int b = 0; b < n; b++) {
                    const int dx = (int)hcr_rng_below(&augment_rng, span) - cfg->shift;
                    const int dy = (int)hcr_rng_below(&augment_rng, span) - cfg->shift;
                    const int flip = cfg->flip ? (int)(hcr_rng_next(&augment_rng) >> 63) : 0;
                    augment_image(aug + (size_t)b * image, train->pixels + (size_t)order[start + b] * image,
                                  train->rows, train->cols, dx, dy, flip);
                }
                model_load_input(m, aug, aug_index, n);
            } else {
                model_load_input(m, train->pixels, order + start, n);
            }
            for (int b = 0; b < n; b++) labels[b] = train->labels[order[start + b]];
            model_forward(m, n, 1, &dropout_rng);
            int correct = 0;
            double loss = model_loss(m, n, labels, &correct);
            if ((s = model_backward(m, n, labels))) break;
            opt.lr = train_lr_at(cfg, (long)(epoch - 1) * steps + step, (long)cfg->epochs * steps);
            adam_step(&opt, m->params, m->grads);
            loss_sum += loss * n;
            correct_sum += correct;
            seen += n;
            p.step = step + 1;
            p.loss = loss_sum / seen;
            p.accuracy = (double)correct_sum / seen;
            p.epoch_seconds = now_seconds() - t0;
            if (cb && cb(user, &p)) {
                s = hcr_fail(HCR_EINTERRUPTED, "training stopped at epoch %d, step %d", epoch, step + 1);
                break;
            }
        }
        if (s) break;
        if (val) {
            if ((s = model_eval_dataset(m, val, batch, &p.val_loss, &p.val_accuracy, NULL))) break;
        }
        p.epoch_seconds = now_seconds() - t0;
        p.end_of_epoch = 1;
        if (history) {
            hcr_epoch_record *r = &history->rows[history->epochs++];
            r->loss = p.loss;
            r->accuracy = p.accuracy;
            r->val_loss = val ? p.val_loss : 0;
            r->val_accuracy = val ? p.val_accuracy : 0;
            r->seconds = p.epoch_seconds;
        }
        if (cb && cb(user, &p))
            s = hcr_fail(HCR_EINTERRUPTED, "training stopped after epoch %d", epoch);
    }
    free(order);
    free(labels);
    free(aug);
    free(aug_index);
    adam_free(&opt);
    return s;
}

void hcr_history_free(hcr_history *h)
{
    if (!h) return;
    free(h->rows);
    h->rows = NULL;
    h->epochs = 0;
}
