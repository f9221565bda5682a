/*
 * cmd_serve.c - hcr serve: models over HTTP, on libmicrohttpd. The
 * requests are answered by src/serve/ (serve_handle: routes, bodies, JSON,
 * the page); this file is the server around it: options, the listening
 * socket, the thread pool, reading bodies within --max-body, one log line
 * per request, the metrics' timing, and a clean stop on SIGINT/SIGTERM.
 */
#include "cli.h"
#include "serve/serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <glob.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const char help[] =
    "usage: hcr serve [MODEL...] [options]\n"
    "\n"
    "Serve models over HTTP: a page to write or photograph handwriting on (GET /),\n"
    "and a JSON API: POST /api/predict (one character), POST /api/read (a line),\n"
    "GET /api/models, GET /healthz and GET /metrics (Prometheus); docs/api.md.\n"
    "Without MODEL, the *_cnn.safetensors files of the current folder (what hcr\n"
    "train writes), mnist_cnn first. The first model is the default. Each is\n"
    "loaded once and shared by every thread.\n"
    "\n"
    "options:\n"
    "  --host ADDR          the address to listen on (default 127.0.0.1: this\n"
    "                       machine only; 0.0.0.0 or :: for every interface)\n"
    "  --port N             the port (default 8080; 0: a free one, printed)\n"
    "  --threads N          threads answering requests (default: all cores)\n"
    "  --max-body BYTES     the largest request body (default 10485760, 10 MiB);\n"
    "                       a larger one is answered 413 before it is read\n"
    "  --max-connections N  connections at once (default 256); more are refused\n"
    "  --timeout S          close a connection idle for S seconds (default 30)\n"
    "  -q, --quiet          no line per request on standard output\n"
    "  -h, --help           this help\n"
    "\n"
    "Each request is logged on standard output: client, time, request line,\n"
    "status, bytes of the answer and microseconds taken. Ctrl-C or SIGTERM stops\n"
    "accepting connections, lets the requests in flight finish (for up to\n"
    "--timeout seconds) and exits 0.\n"
    "\n"
    "Exit status: 0 stopped by a signal, 1 an error (a model, the address), 2 bad\n"
    "usage.\n";

/* -------------------------------------------------------------- the server */

typedef struct server {
    serve_ctx ctx;
    serve_metrics metrics;
    bool quiet;
} server;

/* One request, from its first line (URI log callback) to its end
 * (completed callback): MHD's con_cls. */
typedef struct request {
    double t0;
    char *uri;              /* as sent, with the query                  */
    char client[64];
    char method[16];
    char version[16];
    uint8_t *body;
    size_t len, cap;
    int status;             /* 0 until a response is queued             */
    size_t bytes;           /* the response body's length               */
    bool started;           /* the access handler has seen it           */
    bool too_big;           /* over --max-body: the rest is dropped     */
    size_t dropped;         /* bytes dropped so far                     */
} request;

/* A request line's text made safe for a log line (quotes and control
 * bytes as \xNN), cut at n - 1 bytes. */
static const char *log_text(const char *s, char *out, size_t n)
{
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && k + 5 < n; p++) {
        if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
            k += (size_t)snprintf(out + k, n - k, "\\x%02x", *p);
        else
            out[k++] = (char)*p;
    }
    out[k] = '\0';
    return out;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    server *s = cls;
#ifdef _OPENMP
    /* one thread per request: the pool's threads are the parallelism
     * (this also keeps OpenBLAS's OpenMP build to one thread here) */
    static _Thread_local bool single;
    if (!single) {
        omp_set_num_threads(1);
        single = true;
    }
#endif
    request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->t0 = serve_now();
    if (!(r->uri = strdup(uri ? uri : ""))) {
        free(r);
        return NULL;
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(r->client, sizeof r->client, "-");
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, r->client, sizeof r->client);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, r->client,
                      sizeof r->client);
    }
    atomic_fetch_add(&s->metrics.in_flight, 1);
    return r;
}

/* Queue a serve_response; returns MHD's answer. */
static enum MHD_Result send_response(struct MHD_Connection *conn, request *r, const serve_response *res)
{
    struct MHD_Response *mr =
        MHD_create_response_from_buffer(res->body_len, (void *)res->body, MHD_RESPMEM_MUST_COPY);
    if (!mr) return MHD_NO;
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, res->content_type);
    MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (res->allow[0]) MHD_add_response_header(mr, MHD_HTTP_HEADER_ALLOW, res->allow);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)res->status, mr);
    MHD_destroy_response(mr);
    if (ok == MHD_YES) {
        r->status = res->status;
        r->bytes = res->body_len;
    }
    return ok;
}

static enum MHD_Result refuse(struct MHD_Connection *conn, request *r, int status, const char *msg)
{
    serve_response res;
    serve_error(&res, status, msg);
    enum MHD_Result ok = send_response(conn, r, &res);
    serve_response_free(&res);
    return ok;
}

static enum MHD_Result too_big(struct MHD_Connection *conn, request *r, size_t max)
{
    char msg[160];
    snprintf(msg, sizeof msg, "the body is larger than %zu bytes, this server's limit (--max-body)", max);
    return refuse(conn, r, 413, msg);
}

/* The headers: refuse a declared body over the limit before reading it. */
static enum MHD_Result on_headers(struct MHD_Connection *conn, request *r, const char *method, const char *version,
                                  size_t max)
{
    r->started = true;
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->version, sizeof r->version, "%s", version);
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || end == cl || *end || n > max) return too_big(conn, r, max);
        if (n > 0 && !(r->body = malloc((size_t)n))) return refuse(conn, r, 503, "out of memory");
        r->cap = (size_t)n;
    }
    return MHD_YES;
}

/* A part of the body: counted against the limit as it comes (a body
 * without Content-Length). libmicrohttpd 0.9 answers only once the body is
 * read: over the limit, the rest is dropped as it comes, up to as much
 * again, then the connection is closed. */
static enum MHD_Result on_body_part(server *s, struct MHD_Connection *conn, request *r, const char *upload, size_t n)
{
    const size_t max = s->ctx.max_body;
    atomic_fetch_add_explicit(&s->metrics.body_bytes, n, memory_order_relaxed);
    if (r->too_big || n > max - r->len) {
        if (!r->too_big) {
            r->too_big = true;
            free(r->body);
            r->body = NULL;
        }
        r->dropped += n;
        return r->dropped <= max ? MHD_YES : MHD_NO;
    }
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 64 * 1024;
        while (cap < r->len + n) cap = cap > max / 2 ? max : cap * 2;
        uint8_t *b = realloc(r->body, cap);
        if (!b) return refuse(conn, r, 503, "out of memory");
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, upload, n);
    r->len += n;
    return MHD_YES;
}

/* The whole request: answer it through serve_handle. */
static enum MHD_Result answer(server *s, struct MHD_Connection *conn, request *r, const char *method)
{
    char *query = strchr(r->uri, '?');
    if (query) *query++ = '\0';
    serve_request req = {
        .method = method,
        .path = r->uri,
        .query = query,
        .content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        .body = r->body,
        .body_len = r->len,
    };
    serve_response res;
    serve_handle(&s->ctx, &req, &res);
    if (query) query[-1] = '?'; /* the log shows the request as sent */
    free(r->body);
    r->body = NULL;
    enum MHD_Result ok = send_response(conn, r, &res);
    serve_response_free(&res);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    server *s = cls;
    request *r = *con_cls;
    (void)url;
    if (!r) return MHD_NO; /* out of memory in on_uri: close */
    if (!r->started) return on_headers(conn, r, method, version, s->ctx.max_body);
    if (*upload_size) {
        const size_t n = *upload_size;
        *upload_size = 0;
        return on_body_part(s, conn, r, upload, n);
    }
    if (r->status) return MHD_YES;
    if (r->too_big) return too_big(conn, r, s->ctx.max_body);
    return answer(s, conn, r, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    server *s = cls;
    request *r = *con_cls;
    (void)conn;
    if (!r) return;
    *con_cls = NULL;
    const double secs = serve_now() - r->t0;
    /* no answer was sent: the client went away, or was too slow */
    int status = r->status ? r->status : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? 408 : 499;
    char *q = strchr(r->uri, '?');
    if (q) *q = '\0'; /* the route is the path's */
    serve_metrics_observe(&s->metrics, serve_route_of(r->uri), status, secs);
    if (q) *q = '?';
    if (!s->quiet) {
        char when[64], uri[600], method[64], version[64];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S %z", &tm);
        printf("%s - - [%s] \"%s %s %s\" %d %zu %.0fus\n", r->client, when,
               log_text(r->method[0] ? r->method : "-", method, sizeof method), log_text(r->uri, uri, sizeof uri),
               log_text(r->version[0] ? r->version : "-", version, sizeof version), status, r->bytes, secs * 1e6);
    }
    atomic_fetch_sub(&s->metrics.in_flight, 1);
    free(r->body);
    free(r->uri);
    free(r);
}

static bool quiet_log;

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (quiet_log) return;
    fputs("hcr serve: ", stderr);
    vfprintf(stderr, fmt, ap);
}

/* ------------------------------------------------------------------ models */

/* A model's name: its file name without the folder and .safetensors,
 * with anything but letters, digits, '.', '_' and '-' as '_'. */
static void model_name(const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    if (len > 12 && !strcmp(base + len - 12, ".safetensors")) len -= 12;
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < n; i++) {
        char c = base[i];
        bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                   c == '_' || c == '-';
        out[k++] = okc ? c : '_';
    }
    out[k] = '\0';
    if (!k) snprintf(out, n, "model");
}

/* ------------------------------------------------------------ the socket */

/* A listening TCP socket on host:port; prints why not and returns -1.
 * *bound gets the port (the one chosen for 0). */
static int listen_on(const char *host, long port, int backlog, int *family, int *bound)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    char ps[16];
    snprintf(ps, sizeof ps, "%ld", port);
    int e = getaddrinfo(host, ps, &hints, &ai);
    if (e) {
        fprintf(stderr, "hcr serve: --host %s: %s\n", cli_text(host), gai_strerror(e));
        return -1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, backlog)) {
        fprintf(stderr, "hcr serve: cannot listen on %s port %ld: %s\n", cli_text(host), port, strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    *family = ai->ai_family;
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *bound = (int)port;
    if (!getsockname(fd, (struct sockaddr *)&ss, &sl))
        *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* ------------------------------------------------------------------- main */

typedef struct serve_opts {
    const char *host;
    long port, threads, max_body, max_conn, timeout;
    bool quiet;
} serve_opts;

/* The command line into o; 0 to go on, else the exit status. */
static int parse_serve(int argc, char **argv, serve_opts *o)
{
    static const struct option lopts[] = {
        {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'},
        {"threads", required_argument, 0, 't'},
        {"max-body", required_argument, 0, 'b'},
        {"max-connections", required_argument, 0, 'c'},
        {"timeout", required_argument, 0, 'T'},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    *o = (serve_opts){"127.0.0.1", 8080, 0, 10L << 20, 256, 30, false};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hq", lopts, NULL)) != -1) {
        switch (c) {
        case 'H': o->host = optarg; break;
        case 'p': if (!cli_int("serve", "--port", optarg, 0, 65535, &o->port)) return 2; break;
        case 't': if (!cli_int("serve", "--threads", optarg, 1, 1024, &o->threads)) return 2; break;
        case 'b': if (!cli_int("serve", "--max-body", optarg, 1, 1L << 30, &o->max_body)) return 2; break;
        case 'c': if (!cli_int("serve", "--max-connections", optarg, 1, 65536, &o->max_conn)) return 2; break;
        case 'T': if (!cli_int("serve", "--timeout", optarg, 1, 86400, &o->timeout)) return 2; break;
        case 'q': o->quiet = true; break;
        case 'h': fputs(help, stdout); return -1;
        default: return cli_bad_option("serve", argc, argv, "hq", lopts);
        }
    }
    if (!*o->host) return cli_usage_error("serve", "--host: an empty address");
    if (!o->threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o->threads = n > 0 ? n : 1;
    }
    return 0;
}

/* Without MODEL arguments, the *_cnn.safetensors files here (in g),
 * mnist_cnn first; 1 (said) if there are none. */
static int default_models(glob_t *g, char ***paths, int *npaths)
{
    if (glob("*_cnn.safetensors", 0, NULL, g) != 0 || g->gl_pathc == 0) {
        fprintf(stderr, "hcr serve: no model named and no *_cnn.safetensors in this folder; train one with\n"
                        "'hcr train' (it writes mnist_cnn.safetensors), or name a model file:\n"
                        "hcr serve MODEL.safetensors\n");
        return 1;
    }
    for (size_t i = 0; i < g->gl_pathc; i++)
        if (!strcmp(g->gl_pathv[i], "mnist_cnn.safetensors")) {
            char *t = g->gl_pathv[0];
            g->gl_pathv[0] = g->gl_pathv[i];
            g->gl_pathv[i] = t;
        }
    *paths = g->gl_pathv;
    *npaths = (int)g->gl_pathc;
    return 0;
}

/* Load the models, each named by its file (names[i]); 0 or the exit status. */
static int load_models(char **paths, int n, serve_model *models, char (*names)[128])
{
    for (int i = 0; i < n; i++) {
        model_name(paths[i], names[i], sizeof names[i]);
        for (int j = 0; j < i; j++)
            if (!strcmp(names[i], names[j]))
                return cli_usage_error("serve", "two models are named '%s' (%s and %s): the name is the file's",
                                       names[i], cli_text(paths[j]), cli_text(paths[i]));
        models[i].name = names[i];
        if (cli_load_model(paths[i], &models[i].model)) return 1;
        if (hcr_model_input_rows(models[i].model) != 28 || hcr_model_input_cols(models[i].model) != 28) {
            fprintf(stderr, "hcr serve: %s takes %dx%d images; serve needs 28x28\n", cli_text(paths[i]),
                    hcr_model_input_rows(models[i].model), hcr_model_input_cols(models[i].model));
            return 1;
        }
    }
    return 0;
}

/* The daemon on the listening socket fd, its pool's threads blocking the
 * stop signals (only the main thread takes them, in sigwait). */
static struct MHD_Daemon *start_daemon(server *s, const serve_opts *o, int fd, int family, const sigset_t *stop)
{
    pthread_sigmask(SIG_BLOCK, stop, NULL);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     (family == AF_INET6 ? MHD_USE_IPv6 : 0);
#ifdef __linux__
    flags |= MHD_USE_EPOLL;
#else
    flags |= MHD_USE_POLL;
#endif
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,                   /* */
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,           /* first */
                            MHD_OPTION_LISTEN_SOCKET, fd,                           /* */
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->threads,      /* */
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_conn,     /* */
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout,    /* */
                            MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,                 /* */
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,           /* */
                            MHD_OPTION_END);
}

/* Wait for SIGINT or SIGTERM, then stop accepting and let the requests in
 * flight finish (a second signal, or --timeout seconds, cuts it short). */
static void run_until_stopped(server *s, struct MHD_Daemon *d, const sigset_t *stop, long timeout)
{
    int sig = 0;
    while (sigwait(stop, &sig) != 0) {
    }
    fprintf(stderr, "hcr serve: %s: finishing the requests in flight\n", sig == SIGINT ? "interrupted" : "terminated");
    MHD_socket lfd = MHD_quiesce_daemon(d);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    const double until = serve_now() + (double)timeout;
    struct timespec zero = {0, 0};
    while (atomic_load(&s->metrics.in_flight) > 0 && serve_now() < until) {
        if (sigtimedwait(stop, NULL, &zero) > 0) break;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    long long left = atomic_load(&s->metrics.in_flight);
    MHD_stop_daemon(d);
    if (left > 0) fprintf(stderr, "hcr serve: stopped with %lld request%s unfinished\n", left, left == 1 ? "" : "s");
    else fprintf(stderr, "hcr serve: stopped\n");
}

static void say_listening(const serve_model *models, int n, const serve_opts *o, int family, int bound)
{
    fprintf(stderr, "hcr serve: ");
    for (int i = 0; i < n; i++)
        fprintf(stderr, "%s%s (%d classes)", i ? ", " : "", models[i].name, hcr_model_num_classes(models[i].model));
    fprintf(stderr, "; %ld thread%s\n", o->threads, o->threads == 1 ? "" : "s");
    fprintf(stderr, "hcr serve: listening on http://%s%s%s:%d/ (Ctrl-C stops)\n", family == AF_INET6 ? "[" : "",
            cli_text(o->host), family == AF_INET6 ? "]" : "", bound);
}

/* Listen, serve until a stop signal; 0 or the exit status. */
static int serve_models(serve_model *models, int n, const serve_opts *o)
{
    int family = AF_INET, bound = 0;
    int fd = listen_on(o->host, o->port, (int)(o->max_conn < 1024 ? o->max_conn : 1024), &family, &bound);
    if (fd < 0) return 1;
    server *s = calloc(1, sizeof *s);
    if (!s) {
        fprintf(stderr, "hcr serve: out of memory\n");
        close(fd);
        return 1;
    }
    hcr_set_threads(1); /* each request on one thread */
    serve_metrics_init(&s->metrics);
    s->quiet = quiet_log = o->quiet;
    s->ctx = (serve_ctx){.models = models,
                         .nmodels = n,
                         .max_body = (size_t)o->max_body,
                         .max_pixels = HCR_IMAGE_MAX_PIXELS,
                         .page = serve_page_html,
                         .page_len = serve_page_html_len,
                         .metrics = &s->metrics,
                         .started = serve_now()};
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    struct MHD_Daemon *d = start_daemon(s, o, fd, family, &stop);
    int rc = 0;
    if (!d) {
        fprintf(stderr, "hcr serve: the HTTP server did not start (libmicrohttpd %s)\n", MHD_get_version());
        close(fd);
        rc = 1;
    } else {
        say_listening(models, n, o, family, bound);
        run_until_stopped(s, d, &stop, o->timeout);
    }
    free(s);
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    serve_opts o;
    int rc = parse_serve(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    glob_t g = {0};
    char **paths = argv + optind;
    int npaths = argc - optind;
    if (npaths == 0 && (rc = default_models(&g, &paths, &npaths))) {
        globfree(&g);
        return rc;
    }
    serve_model *models = calloc((size_t)npaths, sizeof *models);
    char(*names)[128] = calloc((size_t)npaths, sizeof *names);
    if (!models || !names) {
        fprintf(stderr, "hcr serve: out of memory\n");
        rc = 1;
    }
    if (!rc) rc = load_models(paths, npaths, models, names);
    if (!rc) rc = serve_models(models, npaths, &o);
    for (int i = 0; i < npaths && models; i++) hcr_model_free(models[i].model);
    free(models);
    free(names);
    globfree(&g);
    return rc;
}
