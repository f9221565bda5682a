/*
 * harness.h - a minimal test harness. A test file defines functions
 * `static void test_xxx(void)` and lists them in TEST_MAIN(...). Each
 * CHECK that fails prints file:line and the expression and marks the
 * current test failed; the program prints "<n> passed, <m> failed" and
 * exits non-zero if any test failed.
 */
#ifndef HCR_TEST_HARNESS_H
#define HCR_TEST_HARNESS_H

#include "hcr.h"
#include "hcr_data.h"
#include "hcr_report.h"

#include <stdint.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

extern int harness_failed_checks;
extern const char *harness_data_dir; /* ../shared/data/mnist or $HCR_TEST_DATA */

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            harness_failed_checks++;                                             \
        }                                                                        \
    } while (0)

#define CHECK_MSG(cond, ...)                                                     \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            harness_failed_checks++;                                             \
        }                                                                        \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                    \
    do {                                                                         \
        double a_ = (double)(a), b_ = (double)(b);                               \
        if (!(fabs(a_ - b_) <= (tol))) {                                         \
            fprintf(stderr, "  %s:%d: %s = %.9g, expected %s = %.9g (tol %g)\n", \
                    __FILE__, __LINE__, #a, a_, #b, b_, (double)(tol));          \
            harness_failed_checks++;                                             \
        }                                                                        \
    } while (0)

/* The message contains the substring. */
#define CHECK_CONTAINS(msg, sub)                                                 \
    do {                                                                         \
        const char *m_ = (msg), *s_ = (sub);                                     \
        if (!m_ || !strstr(m_, s_)) {                                            \
            fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n",         \
                    __FILE__, __LINE__, m_ ? m_ : "(null)", s_);                 \
            harness_failed_checks++;                                             \
        }                                                                        \
    } while (0)

typedef struct harness_test {
    const char *name;
    void (*fn)(void);
} harness_test;

int harness_main(int argc, char **argv, const harness_test *tests, int n);

/* A scratch directory for this test program, created on first use. */
const char *harness_tmpdir(void);
/* "<harness_tmpdir()>/<name>"; the last 8 results stay valid. */
const char *harness_tmp_path(const char *name);
/* v as 4 big-endian bytes (IDX headers). */
void harness_be32(unsigned char *p, uint32_t v);

#define TEST(fn) { #fn, fn }
#define TEST_MAIN(...)                                                          \
    int main(int argc, char **argv)                                              \
    {                                                                            \
        static const harness_test tests_[] = { __VA_ARGS__ };                    \
        return harness_main(argc, argv, tests_, (int)(sizeof tests_ / sizeof tests_[0])); \
    }

#endif
