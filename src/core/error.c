/*
 * error.c - the per-thread last-error message and small shared helpers
 * (random numbers, threads, strings).
 */
#include "core/internal.h"

#include <stdatomic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static _Thread_local char last_error[1024];

hcr_status hcr__fail(hcr_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

hcr_status hcr__fail_prefix(hcr_status s, const char *fmt, ...)
{
    char prefix[512], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    if (snprintf(last_error, sizeof last_error, "%s: %s", prefix, old) >= (int)sizeof last_error)
        memcpy(last_error + sizeof last_error - 4, "...", 4); /* cut, and say so */
    return s;
}

void hcr_clear_error(void) { last_error[0] = '\0'; }

const char *hcr_last_error(void) { return last_error; }

const char *hcr_status_name(hcr_status s)
{
    switch (s) {
    case HCR_OK: return "ok";
    case HCR_EINVAL: return "invalid argument";
    case HCR_ENOMEM: return "out of memory";
    case HCR_EIO: return "input/output error";
    case HCR_EFORMAT: return "format error";
    case HCR_ECHECKSUM: return "checksum mismatch";
    case HCR_ENETWORK: return "network error";
    case HCR_EINTERRUPTED: return "interrupted";
    }
    return "unknown error";
}

char *hcr__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ------------------------------------------------------------------ rng */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void hcr_rng_seed(hcr_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t hcr_rng_next(hcr_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float hcr_rng_uniform(hcr_rng *r) { return (float)(hcr_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

uint32_t hcr_rng_below(hcr_rng *r, uint32_t n)
{
    /* Lemire's multiply-and-reject. */
    uint64_t m = (uint64_t)(uint32_t)(hcr_rng_next(r) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)(uint32_t)(hcr_rng_next(r) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

/* -------------------------------------------------------------- threads */

/* The library's default thread count for predictions and evaluations
 * that do not name one: set by hcr_set_threads, read by any thread. It
 * never changes OpenMP's own settings: each parallel region names its
 * thread count. */
static _Atomic int thread_count;

void hcr_set_threads(int threads)
{
    atomic_store(&thread_count, threads > 0 ? threads : 0);
}

int hcr_threads(void)
{
    int t = atomic_load(&thread_count);
#ifdef _OPENMP
    return t > 0 ? t : omp_get_num_procs();
#else
    (void)t;
    return 1;
#endif
}
