/*
 * checkpoint.c - a training run's whole state in one file, so that a run
 * killed at any moment continues where its last checkpoint left it, bit
 * for bit (trainer.h says what the state is).
 *
 * The file is a model file (docs/model-format.md) with three more tensors,
 * "optimizer.m" and "optimizer.v" (F32, one per parameter: Adam's moments)
 * and "train.order" (I32, one per training image: this epoch's order), and
 * one more metadata entry, "checkpoint", a JSON object:
 *
 *   {"version": 1, "config": {"epochs": 10, "batch_size": 128, "lr": 0.001,
 *    ..., "seed": "000000000000002a"}, "train_count": 54000, "steps": 422,
 *    "epoch": 3, "step": 17, "shuffled": 1, "adam_step": 861,
 *    "rng": {"shuffle": ["<16 hex digits>" x4], "dropout": [...],
 *            "augment": [...]},
 *    "loss_sum": 1.25, "correct_sum": 2100, "seen": 2176,
 *    "seconds_before": 0.8, "history": [[loss, accuracy, val_loss,
 *    val_accuracy, seconds], ...]}
 *
 * 64-bit integers travel as hex strings (JSON numbers are doubles); the
 * doubles are printed so that they read back exactly. It is written like a
 * model, atomically, and read with the same loader, so a damaged or crafted
 * checkpoint is refused with a message like a damaged model; every field
 * of the state is then checked before anything is used.
 */
#include "nn/trainer.h"

#include <cjson/cJSON.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CKPT_VERSION 1
#define META_KEY "checkpoint"

/* --------------------------------------------------------------- writing */

static cJSON *hex_array(const uint64_t *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        char buf[17];
        snprintf(buf, sizeof buf, "%016" PRIx64, v[i]);
        cJSON_AddItemToArray(a, cJSON_CreateString(buf));
    }
    return a;
}

/* A double as JSON that reads back to the same bits (cJSON's own
 * printing may round the last digit). */
static cJSON *exact(double v)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    return cJSON_CreateRaw(buf);
}

static cJSON *config_json(const hcr_train_config *c)
{
    cJSON *j = cJSON_CreateObject();
    uint64_t seed = c->seed;
    cJSON_AddNumberToObject(j, "epochs", c->epochs);
    cJSON_AddNumberToObject(j, "batch_size", c->batch_size);
    cJSON_AddItemToObject(j, "lr", exact(c->lr));
    cJSON_AddItemToObject(j, "beta1", exact(c->beta1));
    cJSON_AddItemToObject(j, "beta2", exact(c->beta2));
    cJSON_AddItemToObject(j, "epsilon", exact(c->epsilon));
    cJSON_AddItemToObject(j, "seed", hex_array(&seed, 1));
    cJSON_AddNumberToObject(j, "threads", c->threads);
    cJSON_AddNumberToObject(j, "shift", c->shift);
    cJSON_AddNumberToObject(j, "flip", c->flip);
    cJSON_AddNumberToObject(j, "lr_schedule", c->lr_schedule);
    return j;
}

/* The "checkpoint" metadata text (malloc'ed), or NULL out of memory. */
static char *state_json(const trainer *t)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "version", CKPT_VERSION);
    cJSON_AddItemToObject(j, "config", config_json(&t->cfg));
    cJSON_AddNumberToObject(j, "train_count", t->train->count);
    cJSON_AddNumberToObject(j, "steps", t->steps);
    cJSON_AddNumberToObject(j, "epoch", t->epoch);
    cJSON_AddNumberToObject(j, "step", t->step);
    cJSON_AddNumberToObject(j, "shuffled", t->shuffled);
    cJSON_AddNumberToObject(j, "adam_step", (double)t->opt.step);
    cJSON *rng = cJSON_AddObjectToObject(j, "rng");
    cJSON_AddItemToObject(rng, "shuffle", hex_array(t->shuffle_rng.s, 4));
    cJSON_AddItemToObject(rng, "dropout", hex_array(t->dropout_rng.s, 4));
    cJSON_AddItemToObject(rng, "augment", hex_array(t->augment_rng.s, 4));
    cJSON_AddItemToObject(j, "loss_sum", exact(t->loss_sum));
    cJSON_AddNumberToObject(j, "correct_sum", (double)t->correct_sum);
    cJSON_AddNumberToObject(j, "seen", (double)t->seen);
    cJSON_AddItemToObject(j, "seconds_before", exact(t->seconds_before));
    cJSON *h = cJSON_AddArrayToObject(j, "history");
    for (int e = 0; h && e < t->hist.epochs; e++) {
        const hcr_epoch_record *r = &t->hist.rows[e];
        const double row[5] = {r->loss, r->accuracy, r->val_loss, r->val_accuracy, r->seconds};
        cJSON *a = cJSON_CreateArray();
        for (int k = 0; a && k < 5; k++) cJSON_AddItemToArray(a, exact(row[k]));
        cJSON_AddItemToArray(h, a);
    }
    char *text = j ? cJSON_PrintUnformatted(j) : NULL; /* NULL if any part failed */
    cJSON_Delete(j);
    return text;
}

hcr_status trainer_save(trainer *t, const char *path)
{
    char *json = state_json(t);
    if (!json) return hcr__fail(HCR_ENOMEM, "%s: out of memory", path);
    model_extra x[3] = {
        {"optimizer.m", "F32", t->opt.m, t->opt.n},
        {"optimizer.v", "F32", t->opt.v, t->opt.n},
        {"train.order", "I32", t->order, (size_t)t->train->count},
    };
    hcr_status s = hcr_model_set_meta(t->m, META_KEY, json);
    cJSON_free(json);
    if (s == HCR_OK) s = modelfile_save(t->m, path, x, 3);
    hcr_model_set_meta(t->m, META_KEY, NULL);
    if (s) hcr__fail_prefix(s, "writing the checkpoint");
    return s;
}

/* --------------------------------------------------------------- reading */

/* The state as read, every field range-checked. */
typedef struct saved {
    hcr_train_config cfg;
    long train_count, steps, epoch, step, shuffled, adam_step, correct_sum, seen;
    double loss_sum, seconds_before;
    uint64_t rng[3][4];
    const cJSON *history;
} saved;

static int get_num(const cJSON *o, const char *key, double lo, double hi, double *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble < lo || j->valuedouble > hi) return 0;
    *out = j->valuedouble;
    return 1;
}

static int get_long(const cJSON *o, const char *key, long lo, long hi, long *out)
{
    double d;
    if (!get_num(o, key, (double)lo, (double)hi, &d) || d != floor(d)) return 0;
    *out = (long)d;
    return 1;
}

/* n 64-bit values from an array of 16-hex-digit strings. */
static int get_hex(const cJSON *a, uint64_t *v, int n)
{
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return 0;
    int i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        const char *s = cJSON_GetStringValue(e);
        if (!s || strlen(s) != 16 || strspn(s, "0123456789abcdef") != 16) return 0;
        v[i] = strtoull(s, NULL, 16);
    }
    return 1;
}

static int parse_config(const cJSON *c, hcr_train_config *cfg)
{
    long l[6];
    double d[4];
    uint64_t seed;
    if (!get_long(c, "epochs", 1, 100000, &l[0]) || !get_long(c, "batch_size", 1, 65536, &l[1]) ||
        !get_long(c, "threads", 0, 1024, &l[2]) || !get_long(c, "shift", 0, 8, &l[3]) ||
        !get_long(c, "flip", 0, 1, &l[4]) || !get_long(c, "lr_schedule", 0, 1, &l[5]) ||
        !get_num(c, "lr", 1e-12, 10, &d[0]) || !get_num(c, "beta1", 0, 1, &d[1]) ||
        !get_num(c, "beta2", 0, 1, &d[2]) || !get_num(c, "epsilon", 1e-30, 1, &d[3]) ||
        !get_hex(cJSON_GetObjectItemCaseSensitive(c, "seed"), &seed, 1))
        return 0;
    hcr_train_config_default(cfg);
    cfg->epochs = (int)l[0];
    cfg->batch_size = (int)l[1];
    cfg->threads = (int)l[2];
    cfg->shift = (int)l[3];
    cfg->flip = (int)l[4];
    cfg->lr_schedule = (int)l[5];
    cfg->lr = (float)d[0];
    cfg->beta1 = (float)d[1];
    cfg->beta2 = (float)d[2];
    cfg->epsilon = (float)d[3];
    cfg->seed = seed;
    return 1;
}

/* Parse the "checkpoint" metadata; 0 with *what naming the bad field. */
static int parse_state(const cJSON *j, saved *s, const char **what)
{
    long version;
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(j, "rng");
    static const char *const streams[3] = {"shuffle", "dropout", "augment"};
#define NEED(cond, name)   \
    do {                   \
        if (!(cond)) {     \
            *what = (name); \
            return 0;      \
        }                  \
    } while (0)
    NEED(cJSON_IsObject(j), "the checkpoint entry (not a JSON object)");
    NEED(get_long(j, "version", 0, 1000, &version) && version == CKPT_VERSION, "version");
    NEED(parse_config(cJSON_GetObjectItemCaseSensitive(j, "config"), &s->cfg), "config");
    NEED(get_long(j, "train_count", 1, 2000000000, &s->train_count), "train_count");
    /* The position follows from the sizes: steps per epoch from the
     * images and the batch, the images seen from the steps done. */
    const long batch = s->cfg.batch_size < s->train_count ? s->cfg.batch_size : s->train_count;
    NEED(get_long(j, "steps", 1, s->train_count, &s->steps) && s->steps == (s->train_count + batch - 1) / batch,
         "steps (not the training images over the batch size)");
    NEED(get_long(j, "epoch", 1, 100001, &s->epoch), "epoch");
    NEED(get_long(j, "step", 0, s->steps, &s->step), "step");
    NEED(get_long(j, "shuffled", 0, 1, &s->shuffled) && (s->shuffled || s->step == 0), "shuffled");
    /* One Adam update per step: the count follows from the position. */
    NEED(get_long(j, "adam_step", 0, s->epoch * s->steps, &s->adam_step) &&
             s->adam_step == (s->epoch - 1) * s->steps + s->step,
         "adam_step (not the steps done before this point)");
    NEED(get_long(j, "seen", 0, s->train_count, &s->seen) &&
             s->seen == (s->step * batch < s->train_count ? s->step * batch : s->train_count),
         "seen (not the images of the steps done)");
    NEED(get_long(j, "correct_sum", 0, s->seen, &s->correct_sum), "correct_sum");
    NEED(get_num(j, "loss_sum", 0, 1e300, &s->loss_sum), "loss_sum");
    NEED(get_num(j, "seconds_before", 0, 1e12, &s->seconds_before), "seconds_before");
    for (int i = 0; i < 3; i++) {
        const uint64_t *r = s->rng[i];
        NEED(get_hex(cJSON_GetObjectItemCaseSensitive(rng, streams[i]), s->rng[i], 4), "rng");
        NEED(r[0] | r[1] | r[2] | r[3], "rng (an all-zero state never changes)");
    }
    s->history = cJSON_GetObjectItemCaseSensitive(j, "history");
    NEED(cJSON_IsArray(s->history) && cJSON_GetArraySize(s->history) == s->epoch - 1, "history");
    for (const cJSON *row = s->history->child; row; row = row->next) {
        NEED(cJSON_IsArray(row) && cJSON_GetArraySize(row) == 5, "history");
        for (const cJSON *v = row->child; v; v = v->next) NEED(cJSON_IsNumber(v) && isfinite(v->valuedouble), "history");
    }
#undef NEED
    return 1;
}

/* Load the file: the model, its extras and the parsed state (whose JSON
 * *doc the caller deletes). */
static hcr_status read_checkpoint(const char *path, hcr_model **m, model_extra *x, saved *s, cJSON **doc)
{
    x[0] = (model_extra){"optimizer.m", "F32", NULL, 0};
    x[1] = (model_extra){"optimizer.v", "F32", NULL, 0};
    x[2] = (model_extra){"train.order", "I32", NULL, 0};
    *doc = NULL;
    hcr_status st = modelfile_load(path, m, x, 3);
    if (st) {
        /* A model file where a checkpoint was expected deserves a plain
         * word, not "missing tensor 'optimizer.m'". */
        char why[1024];
        snprintf(why, sizeof why, "%s", hcr_last_error());
        hcr_model *plain = NULL;
        if (hcr_model_load(path, &plain) == HCR_OK)
            st = hcr__fail(HCR_EFORMAT, "%s: a model file, not a checkpoint", path);
        else
            hcr__fail(st, "%s", why);
        hcr_model_free(plain);
        return st;
    }
    const char *text = hcr_model_get_meta(*m, META_KEY), *what = NULL;
    if (!text) {
        st = hcr__fail(HCR_EFORMAT, "%s: not a checkpoint (no __metadata__.checkpoint)", path);
    } else {
        *doc = cJSON_Parse(text);
        if (!parse_state(*doc, s, &what))
            st = hcr__fail(HCR_EFORMAT, "%s: __metadata__.checkpoint: bad or missing %s", path, what);
        else if (x[2].count != (size_t)s->train_count || x[0].count != (*m)->nparams ||
                 x[1].count != (*m)->nparams)
            st = hcr__fail(HCR_EFORMAT, "%s: the optimizer or order tensors do not match the model and data",
                          path);
    }
    if (st == HCR_OK) hcr_model_set_meta(*m, META_KEY, NULL);
    return st;
}

static void free_read(hcr_model *m, model_extra *x, cJSON *doc)
{
    hcr_model_free(m);
    for (int i = 0; i < 3; i++) free(x[i].data);
    cJSON_Delete(doc);
}

hcr_status hcr_checkpoint_load(const char *path, hcr_model **model, hcr_train_config *cfg)
{
    if (model) *model = NULL;
    if (!path || !model || !cfg) return hcr__fail(HCR_EINVAL, "hcr_checkpoint_load: bad arguments");
    model_extra x[3];
    saved s;
    cJSON *doc;
    hcr_model *m = NULL;
    hcr_status st = read_checkpoint(path, &m, x, &s, &doc);
    if (st == HCR_OK) {
        *model = m;
        m = NULL;
        *cfg = s.cfg;
        cfg->checkpoint = path;
        cfg->resume = 1;
    }
    free_read(m, x, doc);
    return st;
}

/* The run's settings must be the checkpoint's (epochs may grow, threads
 * change). */
static hcr_status check_same_run(const char *path, const trainer *t, const saved *s)
{
    const hcr_train_config *a = &t->cfg, *b = &s->cfg;
    const char *diff = a->batch_size != b->batch_size ? "batch size"
                       : a->lr != b->lr                 ? "learning rate"
                       : a->beta1 != b->beta1 || a->beta2 != b->beta2 || a->epsilon != b->epsilon
                           ? "Adam's beta1, beta2 or epsilon"
                       : a->seed != b->seed               ? "seed"
                       : a->shift != b->shift || a->flip != b->flip ? "augmentation"
                       : a->lr_schedule != b->lr_schedule ? "learning-rate schedule"
                       : s->train_count != t->train->count ? "number of training images"
                       : s->steps != t->steps              ? "steps per epoch"
                                                           : NULL;
    if (diff) return hcr__fail(HCR_EINVAL, "%s: the run to resume used another %s", path, diff);
    if (s->epoch - 1 > a->epochs)
        return hcr__fail(HCR_EINVAL, "%s: the checkpoint has %ld epochs done, more than the %d asked for", path,
                        s->epoch - 1, a->epochs);
    return HCR_OK;
}

/* Every index once: a crafted order could otherwise read past the data. */
static int is_permutation(const int *order, long n)
{
    unsigned char *seen = calloc((size_t)n, 1);
    int ok = seen != NULL;
    for (long i = 0; ok && i < n; i++) {
        ok = order[i] >= 0 && order[i] < n && !seen[order[i]];
        if (ok) seen[order[i]] = 1;
    }
    free(seen);
    return ok;
}

static hcr_status same_model(const char *path, const hcr_model *a, const hcr_model *b)
{
    if (strcmp(a->spec, b->spec) != 0 || a->rows != b->rows || a->cols != b->cols ||
        a->num_classes != b->num_classes)
        return hcr__fail(HCR_EINVAL, "%s: the checkpoint holds another model (%s, %dx%d, %d classes)", path,
                        b->spec, b->rows, b->cols, b->num_classes);
    return HCR_OK;
}

/* Put the saved state into t. */
static void apply(trainer *t, const hcr_model *m, model_extra *x, const saved *s)
{
    memcpy(t->m->params, m->params, sizeof(float) * m->nparams);
    memcpy(t->m->state, m->state, sizeof(float) * m->nstate);
    model_weights_changed(t->m);
    memcpy(t->opt.m, x[0].data, sizeof(float) * m->nparams);
    memcpy(t->opt.v, x[1].data, sizeof(float) * m->nparams);
    t->opt.step = s->adam_step;
    memcpy(t->order, x[2].data, sizeof(int) * (size_t)s->train_count);
    memcpy(t->shuffle_rng.s, s->rng[0], sizeof s->rng[0]);
    memcpy(t->dropout_rng.s, s->rng[1], sizeof s->rng[1]);
    memcpy(t->augment_rng.s, s->rng[2], sizeof s->rng[2]);
    t->epoch = (int)s->epoch;
    t->step = (int)s->step;
    t->shuffled = (int)s->shuffled;
    t->loss_sum = s->loss_sum;
    t->correct_sum = s->correct_sum;
    t->seen = s->seen;
    t->seconds_before = s->seconds_before;
    t->hist.epochs = 0;
    for (const cJSON *row = s->history->child; row; row = row->next) {
        hcr_epoch_record *r = &t->hist.rows[t->hist.epochs++];
        const cJSON *v = row->child;
        r->loss = v->valuedouble;
        r->accuracy = (v = v->next)->valuedouble;
        r->val_loss = (v = v->next)->valuedouble;
        r->val_accuracy = (v = v->next)->valuedouble;
        r->seconds = v->next->valuedouble;
    }
}

hcr_status trainer_restore(trainer *t, const char *path)
{
    model_extra x[3];
    saved s;
    cJSON *doc;
    hcr_model *m = NULL;
    hcr_status st = read_checkpoint(path, &m, x, &s, &doc);
    if (st == HCR_OK) st = same_model(path, t->m, m);
    if (st == HCR_OK) st = check_same_run(path, t, &s);
    if (st == HCR_OK && !is_permutation(x[2].data, s.train_count))
        st = hcr__fail(HCR_EFORMAT, "%s: train.order is not an order of the training images", path);
    if (st == HCR_OK) apply(t, m, x, &s);
    free_read(m, x, doc);
    return st;
}
