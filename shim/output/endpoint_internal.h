/* What the live endpoint's two files share; endpoint.h is its interface.
 *
 *   endpoint.c       the server: sockets and binding, the serving thread's
 *                    poll loop, connections and their deadlines, fork
 *   endpoint_http.c  HTTP: what is asked (a request header, parsed and
 *                    checked) and what is answered (the route, the body
 *                    rendered, the status line and headers)
 *
 * The server only moves bytes; every decision about their meaning is made
 * in endpoint_http.c, so vg_endpoint_respond (the tests' way in, no
 * sockets) answers exactly as a connection would. A header of its own, not
 * endpoint_http.h: endpoint_http.c includes endpoint.h, and the two modules
 * must not include each other (make check-layers). Everything declared
 * here is hidden. */
#ifndef VG_ENDPOINT_INTERNAL_H
#define VG_ENDPOINT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

enum {
    REQUEST_MAX = 8192, /* request line + headers: what a connection may send */
};

/* Where the header ends (index just past the empty line), or 0 if not yet.
 * `from`: bytes already looked at without finding it (a request arriving in
 * pieces is not scanned again from its start each time). */
size_t vg_http_header_end(const char *b, size_t len, size_t from);

enum line_verdict { LINE_PENDING, LINE_VALID, LINE_HOPELESS };

/* The request line as far as it arrived: complete and valid, not complete
 * yet, or already not HTTP (complete and invalid, or holding bytes no
 * request line has), so that a client that is not speaking HTTP is answered
 * 400 at once rather than at its deadline. `from`: bytes already looked at,
 * all pending. */
enum line_verdict vg_http_first_line(const char *b, size_t len, size_t from);

struct response {
    int status;
    const char *content_type;
    char *body;      /* malloc'd, or NULL with body_static */
    const char *body_static;
    size_t body_len;
    bool head;       /* HEAD: headers only */
    bool allow;      /* add Allow: GET, HEAD */
};

/* The answer to a request: with `status` 0, to the complete header in
 * b[0..end) (parsed and checked here); else `status` (400, 431) says why
 * the request is hopeless and `b` is not read. Renders under the model's
 * locks: call it with no socket I/O pending on the answer. */
void vg_http_answer(const char *b, size_t end, int status, struct response *resp);

/* Replace `resp` with an error answer: "STATUS Reason", and why when there
 * is more to say (why may be NULL). resp->body is overwritten, not freed. */
void vg_http_error(struct response *resp, int status, const char *why);

/* The status line and headers into `out`; returns their length. */
size_t vg_http_format_head(const struct response *resp, char *out, size_t size);

/* The body to send (never NULL). */
const char *vg_http_body(const struct response *resp);

#endif
