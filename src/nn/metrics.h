/*
 * metrics.h - loss, accuracy and the confusion matrix over a dataset
 * (metrics.c).
 */
#ifndef HCR_METRICS_H
#define HCR_METRICS_H

#include "nn/model.h"

/* The dataset fits the model (size, labels). `what` names it in messages. */
HCR_LEND hcr_status hcr__check_dataset(const hcr_model *m, const hcr_dataset *ds, const char *what);

/* Mean loss and accuracy of the model on ds, in batches of `batch` images
 * (inference mode). confusion (may be NULL) is num_classes^2 counts,
 * [true * num_classes + predicted], added to. */
hcr_status model_eval_dataset(hcr_model *m, const hcr_dataset *ds, int batch, double *loss,
                              double *accuracy, int *confusion);

/* Precision, recall and F1 per class from a confusion matrix; 0 where the
 * denominator is 0 (a class never predicted has precision 0). */
HCR_LEND void hcr__metrics_from_confusion(const int *confusion, int k, double *precision, double *recall,
                            double *f1, int *support);

#endif
