/*
 * trainer.h - the state of one training run (train.c), and its checkpoint
 * (checkpoint.c). Not part of the public API.
 *
 * Everything that decides the weights a run ends with lives here: the
 * model, the Adam moments and step count, the three random streams, the
 * current epoch's image order and how far into it the run is. A
 * checkpoint holds all of it, so a resumed run is bit-identical to one
 * that was never stopped (with the same thread count).
 */
#ifndef HCR_TRAINER_H
#define HCR_TRAINER_H

#include "nn/model.h"
#include "nn/optimizer.h"

typedef struct trainer {
    hcr_model *m;
    const hcr_dataset *train, *val;
    hcr_train_config cfg;
    adam opt;
    hcr_rng shuffle_rng, dropout_rng, augment_rng;
    int *order;            /* train->count indices: this epoch's order      */
    int batch, steps;      /* images per step, steps per epoch              */
    int epoch;             /* the epoch in progress, 1-based                */
    int step;              /* steps of it done (its order is drawn once
                              step > 0 or shuffled is set)                  */
    int shuffled;          /* this epoch's order has been drawn             */
    double loss_sum;       /* the epoch so far: sum of per-image losses,    */
    long correct_sum, seen;/* right answers, images                         */
    double seconds_before; /* time spent on this epoch before a resume      */
    hcr_history hist;      /* the finished epochs                           */
    uint8_t *labels;       /* batch: the labels of the step                 */
    uint8_t *aug;          /* batch images (augmentation), or NULL          */
    int *aug_index;
} trainer;

/* Write the run's state to path, atomically (checkpoint.c). */
hcr_status trainer_save(trainer *t, const char *path);
/* Restore the state saved at path into t, set up for a fresh run of the
 * same model, data and config (checkpoint.c). */
hcr_status trainer_restore(trainer *t, const char *path);

/* train.c: image `src` (rows x cols) copied to dst moved by (dx, dy) pixels
 * (blank where it moved away from), mirrored left to right if `flip`
 * (after the move). */
void augment_image(uint8_t *dst, const uint8_t *src, int rows, int cols, int dx, int dy, int flip);
/* train.c: the learning rate of step `step` (from 0) of `total`. */
float train_lr_at(const hcr_train_config *cfg, long step, long total);

#endif
