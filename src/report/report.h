/*
 * report.h - helpers of the report writer (report.c) that the tests reach
 * directly; the public entry point is hcr_report_write in hcr_report.h.
 */
#ifndef HCR_REPORT_INTERNAL_H
#define HCR_REPORT_INTERNAL_H

#include "core/internal.h"
#include "hcr_report.h"

/* Add n predictions to a k x k confusion matrix, [true * k + predicted].
 * Labels or predictions outside [0, k) are skipped. */
void report_confusion(const uint8_t *labels, const int *predicted, int n, int k, int *confusion);

/* Standard base64 (RFC 4648, with '=' padding) of n bytes into out, which
 * must hold 4 * ((n + 2) / 3) + 1 bytes; returns the length written
 * (without the terminating NUL). */
size_t report_base64(const unsigned char *in, size_t n, char *out);

/* The pictures' file names, in the order the report shows them. */
#define REPORT_NUM_PNG 5
extern const char *const report_png_names[REPORT_NUM_PNG];

#endif
