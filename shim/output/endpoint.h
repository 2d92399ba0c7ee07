/* The live endpoint (VRAMGUARD_LISTEN): one thread serving GET /health,
 * /metrics (Prometheus text 0.0.4) and /vram (the JSON report) over TCP or a
 * Unix socket. Started when the process first reaches the CUDA driver, never
 * from a constructor, so CPU-only processes that inherit LD_PRELOAD bind
 * nothing. The thread blocks every signal, never creates a CUDA context and
 * never changes state; it serves many connections at once, each bounded in
 * size and time, and never waits on one client. */
#ifndef VG_ENDPOINT_H
#define VG_ENDPOINT_H

#include "emit.h"

/* Bind VRAMGUARD_LISTEN and start the thread (once per process; no-op when
 * unset or already started). A bind failure is one warning line. */
void vg_endpoint_start(void);
/* pthread_atfork child handler: the child does not serve the parent's
 * socket; it may start its own listener when it reaches the driver. */
void vg_endpoint_after_fork(void);

/* The address being served ("http://127.0.0.1:PORT", "unix:/path"), "" if none. */
const char *vg_endpoint_address(void);

/* GET /health's JSON body; returns the HTTP status (200, or 503 when
 * VRAMGUARD_HEALTH_FAIL_ON asks for it). */
int vg_endpoint_health(struct vg_out *o);

/* Answer one raw HTTP request (for tests: no sockets). Writes the whole
 * response (status line, headers, body) to `o`; returns the status code, or
 * 0 when the request is incomplete. */
int vg_endpoint_respond(const char *request, size_t len, struct vg_out *o);

#endif
