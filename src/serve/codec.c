/*
 * codec.c - the small parsers of the request handler: base64, Content-Type
 * values and their parameters, query strings, multipart/form-data bodies.
 * Each reads only the bytes it is given (lengths, never a terminating NUL,
 * for bodies) and writes only within the sizes it is given.
 */
#include "serve/serve.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ base64 */

size_t base64_decoded_max(size_t len)
{
    return len / 4 * 3 + 3;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

static int b64_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

long long base64_decode(const char *in, size_t len, uint8_t *out, size_t *bad_at)
{
    size_t n = 0, pad = 0;
    uint32_t acc = 0;
    int have = 0; /* sextets in acc */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (b64_space(c)) continue;
        if (c == '=') {
            /* padding: only after 2 or 3 sextets of the last group, then
             * nothing but more padding (to fill the group) and space */
            if (have < 2) {
                if (bad_at) *bad_at = i;
                return -1;
            }
            pad++;
            if (have + (int)pad > 4) {
                if (bad_at) *bad_at = i;
                return -1;
            }
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad) {
            if (bad_at) *bad_at = i;
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        if (++have == 4) {
            out[n++] = (uint8_t)(acc >> 16);
            out[n++] = (uint8_t)(acc >> 8);
            out[n++] = (uint8_t)acc;
            acc = 0;
            have = 0;
        }
    }
    /* the last group: 2 sextets give a byte, 3 two; one sextet is no byte,
     * padding must complete the group, and the unused bits must be zero
     * (else two texts would decode the same) */
    if (have == 1 || (pad && have + (int)pad != 4) || (have == 2 && (acc & 0xf)) || (have == 3 && (acc & 0x3))) {
        if (bad_at) *bad_at = len;
        return -1;
    }
    if (have == 2) {
        out[n++] = (uint8_t)(acc >> 4);
    } else if (have == 3) {
        out[n++] = (uint8_t)(acc >> 10);
        out[n++] = (uint8_t)(acc >> 2);
    }
    return (long long)n;
}

/* ------------------------------------------------------------ Content-Type */

/* Skip spaces and tabs. */
static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

int ct_is(const char *ct, const char *type)
{
    if (!ct) return 0;
    ct = skip_ws(ct);
    size_t tl = strlen(type);
    if (strncasecmp(ct, type, tl)) return 0;
    if (tl && type[tl - 1] == '/') { /* a prefix: image/ needs a subtype */
        const char *e = ct + tl;
        return isalnum((unsigned char)*e) != 0;
    }
    const char *e = skip_ws(ct + tl);
    return *e == '\0' || *e == ';';
}

/* An RFC 7230 token character. */
static int tchar(unsigned char c)
{
    return c > 32 && c < 127 && !strchr("()<>@,;:\\\"/[]?={}", c);
}

int ct_param(const char *ct, const char *name, char *out, size_t n)
{
    if (!ct || !n) return -1;
    const size_t nl = strlen(name);
    const char *p = strchr(ct, ';');
    while (p) {
        p = skip_ws(p + 1);
        const char *key = p;
        while (tchar((unsigned char)*p)) p++;
        const size_t kl = (size_t)(p - key);
        p = skip_ws(p);
        if (*p != '=') return -1;
        p = skip_ws(p + 1);
        const int want = kl == nl && !strncasecmp(key, name, nl);
        size_t k = 0;
        int full = 0;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1]) p++;
                if (want) {
                    if (k + 1 >= n) full = 1;
                    else out[k++] = *p;
                }
            }
            if (*p != '"') return -1;
            p++;
        } else {
            const char *v = p;
            while (tchar((unsigned char)*p)) p++;
            if (p == v) return -1;
            for (const char *q = v; q < p && want; q++) {
                if (k + 1 >= n) full = 1;
                else out[k++] = *q;
            }
        }
        if (want) {
            out[k] = '\0';
            return full ? -1 : 0;
        }
        p = skip_ws(p);
        if (*p && *p != ';') return -1;
        if (!*p) break;
    }
    return -1;
}

/* ------------------------------------------------------------ query string */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (unsigned char)tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Percent- and '+'-decode s[0..len) into out (size n). */
static int url_decode(const char *s, size_t len, char *out, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int a = i + 1 < len ? hexval((unsigned char)s[i + 1]) : -1;
            int b = i + 2 < len ? hexval((unsigned char)s[i + 2]) : -1;
            if (a < 0 || b < 0) return -1;
            c = a << 4 | b;
            i += 2;
        }
        if (c == 0 || k + 1 >= n) return -1;
        out[k++] = (char)c;
    }
    out[k] = '\0';
    return 1;
}

int query_param(const char *query, const char *name, char *out, size_t n)
{
    if (!query || !n) return 0;
    const size_t nl = strlen(name);
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        if (!end) end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if ((size_t)(kend - p) == nl && !strncmp(p, name, nl)) {
            if (!eq) {
                out[0] = '\0';
                return 1;
            }
            return url_decode(eq + 1, (size_t)(end - eq - 1), out, n);
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* --------------------------------------------------------------- multipart */

#define MULTIPART_MAX_HEADERS 8192

/* The first n bytes at p that are needle (size nl), or NULL: memchr for
 * its first byte, then memcmp. Linear here: the needles are "\r\n",
 * "\r\n\r\n" and "\r\n--" + a boundary without '\r', so two candidate
 * matches never overlap beyond the first byte. */
static const char *find(const char *p, size_t n, const char *needle, size_t nl)
{
    const char *end = p + n;
    while ((size_t)(end - p) >= nl) {
        const char *c = memchr(p, needle[0], (size_t)(end - p) - nl + 1);
        if (!c) return NULL;
        if (!memcmp(c, needle, nl)) return c;
        p = c + 1;
    }
    return NULL;
}

/* A boundary character of RFC 2046 (space only inside). */
static int bchar(unsigned char c)
{
    return c && (isalnum(c) || strchr("'()+_,-./:=? ", c));
}

/* Copy a header parameter value (quoted or a token) from s into out;
 * returns 0, -1 if malformed or too long. */
static int header_value(const char *s, const char *end, char *out, size_t n)
{
    size_t k = 0;
    if (s < end && *s == '"') {
        for (s++; s < end && *s != '"'; s++) {
            if (*s == '\\' && s + 1 < end) s++;
            if (k + 1 >= n) return -1;
            out[k++] = *s;
        }
        if (s >= end) return -1;
    } else {
        while (s < end && *s != ';' && *s != ' ' && *s != '\t') {
            if (k + 1 >= n) return -1;
            out[k++] = *s++;
        }
    }
    out[k] = '\0';
    return 0;
}

/* Find ;name= in a Content-Disposition value [s, end) (not inside quotes)
 * and return where its value starts, or NULL. */
static const char *disposition_param(const char *s, const char *end, const char *name)
{
    const size_t nl = strlen(name);
    int quoted = 0;
    for (const char *p = s; p < end; p++) {
        if (*p == '"') quoted = !quoted;
        if (quoted || *p != ';') continue;
        const char *k = p + 1;
        while (k < end && (*k == ' ' || *k == '\t')) k++;
        if ((size_t)(end - k) > nl && !strncasecmp(k, name, nl)) {
            const char *v = k + nl;
            while (v < end && (*v == ' ' || *v == '\t')) v++;
            if (v < end && *v == '=') {
                v++;
                while (v < end && (*v == ' ' || *v == '\t')) v++;
                return v;
            }
        }
    }
    return NULL;
}

/* One part's headers [h, end): fills name, filename, content_type. */
static int part_headers(const char *h, const char *end, multipart_part *part, char *why, size_t wn)
{
    while (h < end) {
        const char *eol = find(h, (size_t)(end - h), "\r\n", 2);
        if (!eol) eol = end;
        const char *colon = memchr(h, ':', (size_t)(eol - h));
        if (!colon) {
            snprintf(why, wn, "a part's header line has no ':'");
            return -1;
        }
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t')) v++;
        const size_t kl = (size_t)(colon - h);
        if (kl == 19 && !strncasecmp(h, "Content-Disposition", 19)) {
            const char *p;
            if ((p = disposition_param(v, eol, "name")) &&
                header_value(p, eol, part->name, sizeof part->name)) {
                snprintf(why, wn, "a part's name is malformed or longer than %zu bytes", sizeof part->name - 1);
                return -1;
            }
            if ((p = disposition_param(v, eol, "filename"))) {
                if (header_value(p, eol, part->filename, sizeof part->filename)) {
                    snprintf(why, wn, "a part's filename is malformed or longer than %zu bytes",
                             sizeof part->filename - 1);
                    return -1;
                }
                part->has_filename = 1;
            }
        } else if (kl == 12 && !strncasecmp(h, "Content-Type", 12)) {
            size_t vl = (size_t)(eol - v);
            if (vl >= sizeof part->content_type) {
                snprintf(why, wn, "a part's Content-Type is longer than %zu bytes", sizeof part->content_type - 1);
                return -1;
            }
            memcpy(part->content_type, v, vl);
            part->content_type[vl] = '\0';
        }
        h = eol < end ? eol + 2 : end;
    }
    return 0;
}

/* The next delimiter line at or after p: "\r\n--" boundary (at the start
 * of the body without the "\r\n"), then "--" (the close: *close = 1) or
 * optional space and a line end. Returns where the delimiter starts and
 * sets *after to what follows its line; NULL if there is none. A
 * candidate followed by anything else is data (a sender whose boundary
 * starts another line of the data), and the search goes on. */
static const char *next_delimiter(const char *body, const char *p, const char *end, const char *delim, size_t dl,
                                  const char **after, int *close)
{
    for (;;) {
        const char *d, *q;
        if (p == body && (size_t)(end - p) >= dl - 2 && !memcmp(p, delim + 2, dl - 2)) {
            d = p;
            q = p + dl - 2;
        } else {
            d = find(p, (size_t)(end - p), delim, dl);
            if (!d) return NULL;
            q = d + dl;
        }
        if (end - q >= 2 && q[0] == '-' && q[1] == '-') {
            *close = 1;
            *after = q + 2;
            return d;
        }
        while (q < end && (*q == ' ' || *q == '\t')) q++;
        if (end - q >= 2 && q[0] == '\r' && q[1] == '\n') {
            *close = 0;
            *after = q + 2;
            return d;
        }
        p = d + 1;
    }
}

int multipart_parse(const uint8_t *body, size_t len, const char *boundary, multipart_part *parts, int max,
                    char *why, size_t wn)
{
    const size_t bl = strlen(boundary);
    int good = bl >= 1 && bl <= 70 && boundary[bl - 1] != ' ';
    for (size_t i = 0; i < bl && good; i++) good = bchar((unsigned char)boundary[i]);
    if (!good) {
        snprintf(why, wn, "the multipart boundary must be 1 to 70 letters, digits or '()+_,-./:=? (space inside)");
        return -1;
    }
    char delim[76];
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, bl);
    const size_t dl = bl + 4;
    const char *s = (const char *)body, *end = s + len, *p;
    int close = 0, count = 0;
    if (!next_delimiter(s, s, end, delim, dl, &p, &close)) {
        snprintf(why, wn, "no multipart boundary '--%s' in the body", boundary);
        return -1;
    }
    while (!close) {
        if (count == max) {
            snprintf(why, wn, "more than %d parts in the multipart body", max);
            return -1;
        }
        multipart_part *part = &parts[count];
        memset(part, 0, sizeof *part);
        /* headers up to the blank line; a part may have none */
        const char *data;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
            data = p + 2;
        } else {
            size_t look = (size_t)(end - p) < MULTIPART_MAX_HEADERS + 4 ? (size_t)(end - p)
                                                                         : MULTIPART_MAX_HEADERS + 4;
            const char *hend = find(p, look, "\r\n\r\n", 4);
            if (!hend) {
                snprintf(why, wn, look > MULTIPART_MAX_HEADERS ? "a part's headers are over 8 KiB"
                                                               : "a part's headers do not end in a blank line");
                return -1;
            }
            if (part_headers(p, hend, part, why, wn)) return -1;
            data = hend + 4;
        }
        const char *next = next_delimiter(s, data, end, delim, dl, &p, &close);
        if (!next) {
            snprintf(why, wn, "the multipart body ends inside a part (no closing boundary)");
            return -1;
        }
        part->data = (const uint8_t *)data;
        part->len = (size_t)(next - data);
        count++;
    }
    return count;
}
