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
#include "core/atomic.h"
#include "nn/metrics.h"
#include "nn/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
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
    cfg->checkpoint = NULL;
    cfg->resume = 0;
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

static hcr_status check_config(const hcr_train_config *cfg)
{
    if (cfg->epochs < 1 || cfg->epochs > 100000)
        return hcr__fail(HCR_EINVAL, "epochs must be between 1 and 100000 (got %d)", cfg->epochs);
    if (cfg->batch_size < 1 || cfg->batch_size > 65536)
        return hcr__fail(HCR_EINVAL, "batch size must be between 1 and 65536 (got %d)", cfg->batch_size);
    if (cfg->lr_schedule != HCR_LR_CONSTANT && cfg->lr_schedule != HCR_LR_COSINE)
        return hcr__fail(HCR_EINVAL, "unknown learning-rate schedule %d", cfg->lr_schedule);
    if (cfg->shift < 0 || cfg->shift > 8)
        return hcr__fail(HCR_EINVAL, "augmentation shift must be between 0 and 8 pixels (got %d)", cfg->shift);
    if (cfg->resume && !cfg->checkpoint) return hcr__fail(HCR_EINVAL, "resume needs a checkpoint path");
    return HCR_OK;
}

static void trainer_free(trainer *t)
{
    free(t->order);
    free(t->labels);
    free(t->aug);
    free(t->aug_index);
    adam_free(&t->opt);
    free(t->hist.rows);
}

/* A fresh run: Adam from zero, the streams from the seed, epoch 1. */
static hcr_status trainer_init(trainer *t, hcr_model *m, const hcr_dataset *train, const hcr_dataset *val,
                               const hcr_train_config *cfg)
{
    memset(t, 0, sizeof *t);
    t->m = m;
    t->train = train;
    t->val = val;
    t->cfg = *cfg;
    t->batch = cfg->batch_size < train->count ? cfg->batch_size : train->count;
    t->steps = (train->count + t->batch - 1) / t->batch;
    t->epoch = 1;
    hcr_status s = model_reserve(m, t->batch);
    if (s || (s = adam_init(&t->opt, m->nparams, cfg->lr, cfg->beta1, cfg->beta2, cfg->epsilon))) return s;
    /* With augmentation, each batch's images are altered copies. */
    const bool augment = cfg->shift > 0 || cfg->flip;
    const size_t image = (size_t)train->rows * (size_t)train->cols;
    t->order = malloc(sizeof(int) * (size_t)train->count);
    t->labels = malloc((size_t)t->batch);
    t->aug = augment ? malloc(image * (size_t)t->batch) : NULL;
    t->aug_index = augment ? malloc(sizeof(int) * (size_t)t->batch) : NULL;
    t->hist.rows = calloc((size_t)cfg->epochs, sizeof *t->hist.rows);
    if (!t->order || !t->labels || !t->hist.rows || (augment && (!t->aug || !t->aug_index))) {
        trainer_free(t);
        return hcr__fail(HCR_ENOMEM, "out of memory");
    }
    for (int i = 0; i < train->count; i++) t->order[i] = i;
    for (int b = 0; b < t->batch && t->aug_index; b++) t->aug_index[b] = b;
    /* Three streams from one seed: the shuffle order, the dropout masks and
     * the augmentation. */
    hcr_rng_seed(&t->shuffle_rng, cfg->seed);
    hcr_rng_seed(&t->dropout_rng, cfg->seed ^ 0x64726f706f7574ULL);
    hcr_rng_seed(&t->augment_rng, cfg->seed ^ 0x6175676d656e74ULL);
    return HCR_OK;
}

/* Put the images of this step (shifted and flipped copies when augmenting)
 * into the model's input, and their labels into t->labels. */
static int load_batch(trainer *t)
{
    const hcr_dataset *d = t->train;
    const int start = t->step * t->batch;
    const int n = d->count - start < t->batch ? d->count - start : t->batch;
    const int *idx = t->order + start;
    if (t->aug) {
        const size_t image = (size_t)d->rows * (size_t)d->cols;
        const int shift = t->cfg.shift;
        const uint32_t span = 2u * (uint32_t)shift + 1u;
        for (int b = 0; b < n; b++) {
            const int dx = (int)hcr_rng_below(&t->augment_rng, span) - shift;
            const int dy = (int)hcr_rng_below(&t->augment_rng, span) - shift;
            const int flip = t->cfg.flip ? (int)(hcr_rng_next(&t->augment_rng) >> 63) : 0;
            augment_image(t->aug + (size_t)b * image, d->pixels + (size_t)idx[b] * image, d->rows, d->cols,
                          dx, dy, flip);
        }
        model_load_input(t->m, t->aug, t->aug_index, n);
    } else {
        model_load_input(t->m, d->pixels, idx, n);
    }
    for (int b = 0; b < n; b++) t->labels[b] = d->labels[idx[b]];
    return n;
}

/* One step: load the batch, forward, loss, backward, Adam update. */
static hcr_status train_step(trainer *t)
{
    hcr_model *m = t->m;
    const int n = load_batch(t);
    model_forward(m, n, 1, &t->dropout_rng);
    int correct = 0;
    const double loss = model_loss(m, n, t->labels, &correct);
    hcr_status s = model_backward(m, n, t->labels);
    if (s) return s;
    const long total = (long)t->cfg.epochs * t->steps;
    t->opt.lr = train_lr_at(&t->cfg, (long)(t->epoch - 1) * t->steps + t->step, total);
    adam_step(&t->opt, m->params, m->grads);
    t->loss_sum += loss * n;
    t->correct_sum += correct;
    t->seen += n;
    t->step++;
    return HCR_OK;
}

/* Draw this epoch's order: a Fisher-Yates shuffle of the last one. */
static void shuffle(trainer *t)
{
    for (int i = t->train->count - 1; i > 0; i--) {
        int j = (int)hcr_rng_below(&t->shuffle_rng, (uint32_t)i + 1);
        int tmp = t->order[i];
        t->order[i] = t->order[j];
        t->order[j] = tmp;
    }
    t->shuffled = 1;
}

/* Validation, the history row, and the move to the next epoch. */
static hcr_status finish_epoch(trainer *t, hcr_progress *p, double t0)
{
    if (t->val) {
        hcr_status s = model_eval_dataset(t->m, t->val, t->batch, &p->val_loss, &p->val_accuracy, NULL);
        if (s) return s;
    }
    p->end_of_epoch = 1;
    p->epoch_seconds = now_seconds() - t0;
    hcr_epoch_record *r = &t->hist.rows[t->hist.epochs++];
    r->loss = p->loss;
    r->accuracy = p->accuracy;
    r->val_loss = t->val ? p->val_loss : 0;
    r->val_accuracy = t->val ? p->val_accuracy : 0;
    r->seconds = p->epoch_seconds;
    t->epoch++;
    t->step = t->shuffled = 0;
    t->loss_sum = 0;
    t->correct_sum = t->seen = 0;
    t->seconds_before = 0;
    return HCR_OK;
}

/* Stop: save a checkpoint when asked for one (at the end of an epoch it
 * has just been saved), then say where it stopped. */
static hcr_status interrupted(trainer *t, int end_of_epoch)
{
    if (t->cfg.checkpoint && !end_of_epoch) {
        hcr_status s = trainer_save(t, t->cfg.checkpoint);
        if (s) return s;
    }
    if (end_of_epoch) return hcr__fail(HCR_EINTERRUPTED, "training stopped after epoch %d", t->epoch - 1);
    return hcr__fail(HCR_EINTERRUPTED, "training stopped at epoch %d, step %d", t->epoch, t->step);
}

/* The epoch in progress, from where it stands to its end. */
static hcr_status run_epoch(trainer *t, hcr_progress_fn cb, void *user)
{
    const double t0 = now_seconds() - t->seconds_before;
    if (!t->shuffled) shuffle(t);
    hcr_progress p = {.epoch = t->epoch, .epochs = t->cfg.epochs, .steps = t->steps};
    while (t->step < t->steps) {
        hcr_status s = train_step(t);
        if (s) return s;
        p.step = t->step;
        p.loss = t->loss_sum / (double)t->seen;
        p.accuracy = (double)t->correct_sum / (double)t->seen;
        p.epoch_seconds = now_seconds() - t0;
        if (cb && cb(user, &p)) {
            t->seconds_before = p.epoch_seconds;
            return interrupted(t, 0);
        }
    }
    p.loss = t->seen ? t->loss_sum / (double)t->seen : 0;
    p.accuracy = t->seen ? (double)t->correct_sum / (double)t->seen : 0;
    p.step = t->steps;
    hcr_status s = finish_epoch(t, &p, t0);
    if (s) return s;
    if (t->cfg.checkpoint && (s = trainer_save(t, t->cfg.checkpoint))) return s;
    if (cb && cb(user, &p)) return interrupted(t, 1);
    return HCR_OK;
}

hcr_status hcr_train(hcr_model *m, const hcr_dataset *train, const hcr_dataset *val,
                     const hcr_train_config *cfg, hcr_progress_fn cb, void *user,
                     hcr_history *history)
{
    if (history) memset(history, 0, sizeof *history);
    if (!m || !cfg) return hcr__fail(HCR_EINVAL, "hcr_train: no model or config");
    hcr_status s = check_config(cfg);
    if (s || (s = hcr__check_dataset(m, train, "training"))) return s;
    if (val && (s = hcr__check_dataset(m, val, "validation"))) return s;

    const int threads = m->threads;
    m->threads = cfg->threads; /* this call's passes only */
    trainer t;
    if ((s = trainer_init(&t, m, train, val, cfg))) {
        m->threads = threads;
        return s;
    }
    if (cfg->resume) s = trainer_restore(&t, cfg->checkpoint);
    while (!s && t.epoch <= cfg->epochs) s = run_epoch(&t, cb, user);
    model_weights_changed(m);
    m->threads = threads;
    if (history) {
        *history = t.hist;
        t.hist.rows = NULL;
    }
    trainer_free(&t);
    return s;
}

hcr_status hcr_history_save(const hcr_history *h, int with_val, const char *path)
{
    if (!h || !path) return hcr__fail(HCR_EINVAL, "hcr_history_save: no history or no path");
    hcr_atomic a;
    hcr_status s = hcr_atomic_open(&a, path);
    if (s) return s;
    errno = 0;
    if (fprintf(a.f, "epoch,loss,accuracy%s,seconds\n", with_val ? ",val_loss,val_accuracy" : "") < 0)
        a.err = errno ? errno : EIO;
    for (int i = 0; i < h->epochs && !a.err; i++) {
        const hcr_epoch_record *r = &h->rows[i];
        int n = fprintf(a.f, "%d,%.6f,%.6f", i + 1, r->loss, r->accuracy);
        if (n >= 0 && with_val) n = fprintf(a.f, ",%.6f,%.6f", r->val_loss, r->val_accuracy);
        if (n >= 0) n = fprintf(a.f, ",%.3f\n", r->seconds);
        if (n < 0) a.err = errno ? errno : EIO;
    }
    return hcr_atomic_commit(&a);
}

void hcr_history_free(hcr_history *h)
{
    if (!h) return;
    free(h->rows);
    h->rows = NULL;
    h->epochs = 0;
}
