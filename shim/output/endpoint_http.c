/* The live endpoint's HTTP side (endpoint_internal.h): what is asked and
 * what is answered. A request is its header only, checked strictly (RFC
 * 9112: anything may connect); GET and HEAD of /, /health, /metrics and
 * /vram are answered, anything else with an error status and its reason.
 * Each answer is rendered whole before the server sends any of it. No
 * sockets here: vg_endpoint_respond answers a request held in memory just
 * as a connection's is answered. */
#include "endpoint.h"
#include "endpoint_internal.h"
#include "config.h"
#include "metrics.h"
#include "model.h"
#include "report.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    BODY_FIRST_GUESS = 64 * 1024,
    BODY_MAX = 64 * 1024 * 1024,
};

/* ---- request parsing --------------------------------------------------------- */

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

struct request {
    char method[16];
    char path[256];
    bool path_too_long;
};

/* Empty lines before the request line are ignored (RFC 9112, 2.2): where
 * the request line starts. */
static size_t skip_empty_lines(const char *b, size_t len)
{
    size_t i = 0;
    for (;;) {
        if (i + 1 < len && b[i] == '\r' && b[i + 1] == '\n')
            i += 2;
        else if (i < len && b[i] == '\n')
            i += 1;
        else
            return i;
    }
}

size_t vg_http_header_end(const char *b, size_t len, size_t from)
{
    size_t i = skip_empty_lines(b, len);
    if (from > 2 && from - 2 > i)
        i = from - 2; /* the end ("\n\n", "\n\r\n") may begin in what was seen */
    for (; i < len; i++) {
        if (b[i] != '\n')
            continue;
        if (i + 1 < len && b[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && b[i + 1] == '\r' && b[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Parse a request line ("GET /x HTTP/1.1"). Returns 0 when valid, else the
 * status to answer (400 or 505). */
static int parse_request_line(const char *line, size_t n, struct request *r)
{
    size_t i = 0, m = 0;
    while (i < n && is_tchar((unsigned char)line[i])) {
        if (m + 1 < sizeof(r->method))
            r->method[m++] = line[i];
        i++;
    }
    r->method[m] = '\0';
    if (i == 0 || i >= sizeof(r->method) || i >= n || line[i] != ' ')
        return 400;
    i++;
    size_t t0 = i;
    while (i < n && (unsigned char)line[i] > 0x20 && (unsigned char)line[i] < 0x7f)
        i++;
    size_t t1 = i;
    if (t1 == t0 || i >= n || line[i] != ' ')
        return 400;
    i++;
    const char *v = line + i;
    size_t vn = n - i;
    if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' || v[7] < '0' ||
        v[7] > '9')
        return 400;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return 505;

    /* The target: origin-form "/path?query", or absolute-form "http://host/path". */
    const char *t = line + t0;
    size_t tn = t1 - t0;
    if (tn >= 7 && (strncmp(t, "http://", 7) == 0 || (tn >= 8 && strncmp(t, "https://", 8) == 0))) {
        const char *slash = memchr(t + 8 - (t[4] == ':'), '/', tn - (size_t)(8 - (t[4] == ':')));
        if (slash == NULL) {
            t = "/";
            tn = 1;
        } else {
            tn -= (size_t)(slash - t);
            t = slash;
        }
    } else if (t[0] != '/') {
        if (!(tn == 1 && t[0] == '*'))
            return 400;
    }
    const char *q = memchr(t, '?', tn);
    if (q)
        tn = (size_t)(q - t);
    const char *f = memchr(t, '#', tn);
    if (f)
        tn = (size_t)(f - t);
    if (tn >= sizeof(r->path)) {
        r->path_too_long = true;
        tn = sizeof(r->path) - 1;
    }
    memcpy(r->path, t, tn);
    r->path[tn] = '\0';
    return 0;
}

/* Validate a complete request header (`len` bytes up to and including the
 * empty line) and parse its request line. Returns 0 or the error status. */
static int parse_request(const char *b, size_t len, struct request *r)
{
    memset(r, 0, sizeof(*r));
    size_t i = skip_empty_lines(b, len);
    int status = -1;
    bool first = true;
    while (i < len) {
        const char *nl = memchr(b + i, '\n', len - i);
        if (nl == NULL)
            return 400;
        size_t n = (size_t)(nl - (b + i));
        if (n > 0 && b[i + n - 1] == '\r')
            n--;
        const char *line = b + i;
        i = (size_t)(nl - b) + 1;
        for (size_t k = 0; k < n; k++) {
            unsigned char c = (unsigned char)line[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return 400;
        }
        if (first) {
            status = parse_request_line(line, n, r);
            if (status != 0)
                return status;
            first = false;
            continue;
        }
        if (n == 0)
            break; /* end of header */
        /* field-name ":" value; no obsolete line folding, no space before ':' */
        size_t k = 0;
        while (k < n && is_tchar((unsigned char)line[k]))
            k++;
        if (k == 0 || k >= n || line[k] != ':')
            return 400;
    }
    return first ? 400 : 0;
}

enum line_verdict vg_http_first_line(const char *b, size_t len, size_t from)
{
    size_t i = skip_empty_lines(b, len);
    size_t k = from > 1 && from - 1 > i ? from - 1 : i; /* a '\r' is judged by the byte after it */
    for (; k < len; k++) {
        unsigned char c = (unsigned char)b[k];
        if (c == '\n') {
            struct request r;
            size_t n = k - i;
            if (n > 0 && b[i + n - 1] == '\r')
                n--;
            return parse_request_line(b + i, n, &r) != 0 ? LINE_HOPELESS : LINE_VALID;
        }
        if (c == '\r' && k + 1 < len && b[k + 1] != '\n')
            return LINE_HOPELESS;
        if ((c < 0x20 && c != '\r') || c >= 0x7f)
            return LINE_HOPELESS;
    }
    return LINE_PENDING;
}

/* ---- responses --------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* A renderer: the status of its answer, 500 when it could not make the
 * body (out of host memory: the body is then not used). */
typedef int (*render_fn)(struct vg_out *o);

/* Render once into a heap buffer that grows as needed (a first guess that
 * was too small used to mean rendering the whole breakdown again). False,
 * with why, when there is no body to send: the route answers 500. */
static bool render(render_fn fn, struct response *resp, const char **why)
{
    *why = "out of host memory";
    struct vg_out *o = malloc(sizeof(*o));
    if (o == NULL)
        return false;
    if (!vg_out_growable(o, BODY_FIRST_GUESS, BODY_MAX + 1)) {
        free(o);
        return false;
    }
    int status = fn(o);
    bool fits = status != 500 && o->total < o->size; /* else too large, or out of memory */
    if (status != 500 && o->error != ENOMEM && !fits)
        *why = "the body is larger than 64 MiB";
    if (fits) {
        resp->status = status;
        resp->body = o->buf;
        resp->body_len = o->len;
    } else {
        free(o->buf);
    }
    free(o);
    return fits;
}

int vg_endpoint_health(struct vg_out *o)
{
    struct vg_metrics_snapshot *s = malloc(sizeof(*s));
    if (s == NULL)
        return 500;
    vg_metrics_snapshot(s);
    const struct vg_config *cfg = vg_config();
    bool fail = ((cfg->health_fail_on & VG_FAIL_ON_VIOLATION) && s->violations > 0) ||
                ((cfg->health_fail_on & VG_FAIL_ON_OOM) && s->oom_events > 0) ||
                ((cfg->health_fail_on & VG_FAIL_ON_BUDGET) && vg_budget_oom_count() > 0);
    vg_out_printf(o, "{\"status\":\"%s\",\"pid\":%d,\"vramguard_version\":\"" VG_VERSION "\",\"violations\":%llu,"
                  "\"oom_events\":%llu,\"devices\":[",
                  s->violations > 0 ? "violation" : "ok", (int)getpid(), (unsigned long long)s->violations,
                  (unsigned long long)s->oom_events);
    int shown = 0;
    for (int d = 0; d < s->device_count; d++) {
        const struct vg_metrics_device *m = &s->device[d];
        if (!m->used)
            continue;
        vg_out_printf(o, "%s{\"device\":%d,\"gpu_uuid\":", shown++ ? "," : "", d);
        vg_out_json_string(o, vg_metrics_uuid(s, d));
        vg_out_printf(o, ",\"charged_bytes\":%llu,\"oom_events\":%llu,\"usage\":[",
                      (unsigned long long)m->charge.charged, (unsigned long long)m->oom_events);
        int n = 0;
        for (int k = 0; k < VG_KIND_SLOTS; k++)
            for (int p = 0; p < VG_PURPOSE_SLOTS; p++) {
                const struct vg_cell *c = &s->stats.cell[d][k][p];
                if (c->allocations == 0 && c->live_count == 0)
                    continue;
                vg_out_printf(o, "%s{\"kind\":\"%s\",\"purpose\":\"%s\",\"live_bytes\":%llu,\"live_count\":%llu,"
                              "\"peak_bytes\":%llu}",
                              n++ ? "," : "", vg_kind_name(k), vg_purpose_name(p),
                              (unsigned long long)c->live_bytes, (unsigned long long)c->live_count,
                              (unsigned long long)c->peak_bytes);
            }
        vg_out_str(o, "]}");
    }
    vg_out_str(o, "]}\n");
    free(s);
    return fail ? 503 : 200;
}

static int render_metrics(struct vg_out *o)
{
    return vg_metrics_write(o) ? 200 : 500;
}

static int render_report(struct vg_out *o)
{
    return vg_report_json_served(o) ? 200 : 500;
}

static const char index_text[] = "vramguard " VG_VERSION " endpoint\n"
                                 "GET /health   status and totals (JSON)\n"
                                 "GET /metrics  Prometheus text format 0.0.4\n"
                                 "GET /vram     the full breakdown (JSON report)\n";

void vg_http_error(struct response *resp, int status, const char *why)
{
    char text[192];
    resp->status = status;
    resp->content_type = "text/plain; charset=utf-8";
    snprintf(text, sizeof(text), "%d %s%s%s\n", status, reason(status), why ? ": " : "", why ? why : "");
    resp->body_static = NULL;
    resp->body = strdup(text);
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    resp->allow = status == 405;
}

static void error_response(struct response *resp, int status)
{
    vg_http_error(resp, status, NULL);
}

/* Decide the answer to a complete, parsed request. */
static void route(const struct request *r, int parse_status, struct response *resp)
{
    memset(resp, 0, sizeof(*resp));
    if (parse_status != 0) {
        error_response(resp, parse_status);
        return;
    }
    bool get = strcmp(r->method, "GET") == 0, head = strcmp(r->method, "HEAD") == 0;
    if (!get && !head) {
        error_response(resp, 405);
        return;
    }
    resp->head = head;
    render_fn fn = NULL;
    const char *type = NULL;
    if (r->path_too_long) {
        fn = NULL;
    } else if (strcmp(r->path, "/health") == 0) {
        fn = vg_endpoint_health;
        type = "application/json";
    } else if (strcmp(r->path, "/metrics") == 0) {
        fn = render_metrics;
        type = VG_METRICS_CONTENT_TYPE;
    } else if (strcmp(r->path, "/vram") == 0) {
        fn = render_report;
        type = "application/json";
    } else if (strcmp(r->path, "/") == 0) {
        resp->status = 200;
        resp->content_type = "text/plain; charset=utf-8";
        resp->body_static = index_text;
        resp->body_len = sizeof(index_text) - 1;
        return;
    }
    if (fn == NULL) {
        error_response(resp, 404);
        resp->head = head;
        return;
    }
    const char *why;
    if (!render(fn, resp, &why)) {
        vg_http_error(resp, 500, why);
        resp->head = head;
        return;
    }
    resp->content_type = type;
}

void vg_http_answer(const char *b, size_t end, int status, struct response *resp)
{
    struct request r = {0};
    if (status == 0)
        status = parse_request(b, end, &r);
    route(&r, status, resp);
}

size_t vg_http_format_head(const struct response *resp, char *out, size_t size)
{
    int n = snprintf(out, size,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                     "%sConnection: close\r\n\r\n",
                     resp->status, reason(resp->status), resp->content_type, resp->body_len,
                     resp->allow ? "Allow: GET, HEAD\r\n" : "");
    return n < 0 ? 0 : ((size_t)n < size ? (size_t)n : size - 1);
}

const char *vg_http_body(const struct response *resp)
{
    return resp->body ? resp->body : (resp->body_static ? resp->body_static : "");
}

int vg_endpoint_respond(const char *request, size_t len, struct vg_out *o)
{
    struct response resp;
    size_t end = len > REQUEST_MAX ? 0 : vg_http_header_end(request, len, 0);
    int status;
    if (len > REQUEST_MAX)
        status = 431;
    else if (end == 0 && vg_http_first_line(request, len, 0) == LINE_HOPELESS)
        status = 400;
    else if (end == 0)
        return 0;
    else
        status = 0; /* complete: parsed by vg_http_answer */
    vg_http_answer(request, end, status, &resp);
    char head[512];
    size_t hn = vg_http_format_head(&resp, head, sizeof(head));
    vg_out_mem(o, head, hn);
    if (!resp.head)
        vg_out_mem(o, vg_http_body(&resp), resp.body_len);
    free(resp.body);
    return resp.status;
}
