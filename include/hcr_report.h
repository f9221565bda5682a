/*
 * hcr_report.h - libhcr-report: a model's report, pictures (curves,
 * confusion matrix, samples, mistakes) and one HTML page, drawn with cairo.
 * Link with `pkg-config --libs hcr-report` (libhcr, cairo). Conventions as
 * in hcr.h.
 */
#ifndef HCR_REPORT_H
#define HCR_REPORT_H

#include "hcr.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(default)
#endif

/* ------------------------------------------------------------------ report */

/* Write the pictures of a model and a page holding them into folder `dir`
 * (created, with its parents, when missing): accuracy.png and loss.png (the
 * per-epoch curves from the model's "history" metadata), samples.png (test
 * images with true and predicted labels), confusion.png (the confusion
 * matrix as an annotated heat map), misclassified.png (the most confident
 * mistakes) and report.html, one self-contained page with all of them plus
 * the model summary, recipe, per-class precision/recall/F1, history and
 * timings. `test` is the labelled set the pictures are computed on. Each
 * file is written under a temporary name, then renamed. */
hcr_status hcr_report_write(hcr_model *m, const hcr_dataset *test, const char *dir);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* HCR_REPORT_H */
