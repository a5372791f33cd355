/*  gw_edge — the gateway's edge, before a request reaches a handler: request
    heads (gw_head.c, pure), the door that accepts connections (gw_accept.c)
    and the per-IP table of connections and failed authentications
    (gw_iptab.c). Included by gateway_internal.h. Loop thread only, except
    the pure functions. */
#ifndef CLUSTER_GW_EDGE_H
#define CLUSTER_GW_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- request heads (gw_head.c, pure) and the door (gw_accept.c) --------- */

#define GW_HEAD_MAX_TARGET 2048 /* request target bytes (as sent) → else 414 */
#define GW_HEAD_MAX        3584 /* request line and header lines, bytes → else 431 */
/* Bytes of the head plus 64 per header field and query argument (and a
   Cookie's copy): what libmicrohttpd's 4 KiB pool must hold besides the
   answer's headers (S_MHD_MEMORY in gw_server.c) → else 431. */
#define GW_HEAD_BUDGET 3840

typedef enum {
    GW_HEAD_MORE = 0,     /* incomplete, within the limits so far */
    GW_HEAD_OK,           /* complete and within the limits */
    GW_HEAD_URI_TOO_LONG, /* 414 */
    GW_HEAD_TOO_LARGE,    /* 431 */
    GW_HEAD_LATE,         /* 408: not complete by the request deadline (gw_accept) */
} gw_head_verdict_t;

/* Judges the first len bytes a client sent on a connection (the start of a
   request head) against the limits above. Pure. */
gw_head_verdict_t gw_head_scan(const char *buf, size_t len);

typedef struct gw_accept_t gw_accept_t;

/* Listens on cfg's address (SO_REUSEPORT with cfg->reuse_port), accepts
   connections and peeks at each request head (gw_head_scan) before handing
   the connection to libmicrohttpd (MHD_add_connection); a head over the
   limits gets the JSON 414/431 here. Registers its sockets with srv's loop.
   NULL (logged) on failure. */
gw_accept_t *gw_accept_new(gw_server_t *srv);
/* Closes the listener and every connection still in the head stage; nulls
 *self_p. */
void gw_accept_destroy(gw_accept_t **self_p);
/* The bound port. */
uint16_t gw_accept_port(const gw_accept_t *self);
/* Stops accepting (shutdown): closes the listener, closes connections
   still waiting for their head. */
void gw_accept_quiesce(gw_accept_t *self);
/* Answers 408 and closes connections whose first head is not complete
   within --request-deadline-ms, and closes refused ones still sending after
   5 s. */
void gw_accept_tick(gw_accept_t *self, int64_t now_ms);
/* Writes err as a whole HTTP/1.1 answer with Connection: close on fd (one
   non-blocking send, for a socket whose request was not answered yet);
   reason is the status line's phrase. */
void gw_edge_send_error(int fd, const gw_error_t *err, const char *reason);
/* Connections in the head stage that libmicrohttpd does not count. */
size_t gw_accept_pending(const gw_accept_t *self);

/* ---- connections libmicrohttpd holds (gw_conn.c) ---------------------------- */

/* MHD_OPTION_NOTIFY_CONNECTION (cls: the server): counts a started
   connection against its address in srv->iptab, uncounts it at its close. */
void gw_conn_notify(void *cls,
                    struct MHD_Connection *conn,
                    void **socket_context,
                    enum MHD_ConnectionNotificationCode code);
/* A request began (busy) or ended on conn; upgraded marks a WebSocket,
   which the deadline never cuts. */
void gw_conn_busy(struct MHD_Connection *conn, bool busy, bool upgraded);
/* The request deadline: 408 and shut down every request still receiving
   its body --request-deadline-ms after its first call; shut down every
   kept-alive connection without a request for that long. */
void gw_conn_tick(gw_server_t *srv, int64_t now_ms);

/* ---- per-IP table (gw_iptab.c) --------------------------------------------- */

#define GW_IP_KEY_MAX 48 /* an IPv4/IPv6 address as text, NUL included */

typedef struct gw_iptab_t gw_iptab_t;

/* A table of at most capacity client addresses: the connections each has
   open, and its failed authentications in a fixed window of window_ms
   (fail_max failures block it until the window ends; fail_max 0 = never).
   An address with no connection and no live window is forgotten; when the
   table is full, one with no connection is evicted (clock), even with a
   live window. NULL on failure. Loop thread (no locking). */
gw_iptab_t *gw_iptab_new(size_t capacity, long fail_max, int64_t window_ms);
/* Frees the table; nulls *self_p; NULL is fine. */
void gw_iptab_destroy(gw_iptab_t **self_p);
/* Writes the address of sa (no port) into key. Returns 0, or -1 for a
   family other than IPv4/IPv6 (key is then "?"). Pure. */
int gw_iptab_key(const struct sockaddr *sa, char key[GW_IP_KEY_MAX]);
/* Counts a new connection from key: 0, or -1 (nothing counted) when key
   already has max_per_ip open (0 = no limit) or the table is full of
   addresses that all have connections open. */
int gw_iptab_open(gw_iptab_t *self, const char *key, long max_per_ip, int64_t now_ms);
/* Counts one of key's connections closed. */
void gw_iptab_close(gw_iptab_t *self, const char *key);
/* Connections key has open. */
unsigned gw_iptab_conns(const gw_iptab_t *self, const char *key);
/* Records a failed authentication from key at now_ms. */
void gw_iptab_fail(gw_iptab_t *self, const char *key, int64_t now_ms);
/* 0 when key may try to authenticate; else the ms until its window ends. */
int64_t gw_iptab_blocked_ms(gw_iptab_t *self, const char *key, int64_t now_ms);
/* Addresses held. */
size_t gw_iptab_size(const gw_iptab_t *self);

#endif
