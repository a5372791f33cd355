/*  gw_conn — the connections libmicrohttpd holds, seen from the edge: each
    is counted against its client address in the per-IP table (from
    MHD_OPTION_NOTIFY_CONNECTION's start to its close), and the request
    deadline is enforced on them. A request whose head and body have not
    both arrived within --request-deadline-ms of its first call (a body
    trickled byte by byte: libmicrohttpd's idle timeout restarts at every
    byte) gets a 408 written on its socket, which is then shut down; a
    kept-alive connection with no request for that long (a next head being
    trickled, or plain idleness) is shut down. Upgraded (WebSocket)
    connections and running requests (SSE streams) are left alone. Loop
    thread only. */
#define LOG_MODULE "gw_conn"
#include "gateway/gateway_internal.h"

#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* What we keep per connection (its MHD socket context). */
typedef struct {
    struct MHD_Connection *conn; /* borrowed */
    char ip[GW_IP_KEY_MAX];      /* client address */
    bool counted;                /* counted in the per-IP table */
    bool busy;                   /* a request is between its first call and its end */
    bool upgraded;               /* handed to gw_ws: never cut here */
    bool cut;                    /* shut down by the deadline, closing */
    int64_t idle_since_ms;       /* no request since (mono) */
    void *handle;                /* position in srv->conns */
} s_conn_t;

void gw_conn_notify(void *cls,
                    struct MHD_Connection *conn,
                    void **socket_context,
                    enum MHD_ConnectionNotificationCode code)
{
    gw_server_t *srv = cls;
    s_conn_t *c = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        c = calloc(1, sizeof *c);
        if (!c) {
            return; /* not counted and never cut: its idle timeout still applies */
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        gw_iptab_key(ci ? ci->client_addr : NULL, c->ip);
        c->conn = conn;
        c->idle_since_ms = util_mono_ms();
        /* gw_accept applied the limit at accept; here it is only counted. */
        c->counted = gw_iptab_open(srv->iptab, c->ip, 0, c->idle_since_ms) == 0;
        c->handle = zlistx_add_end(srv->conns, c);
        *socket_context = c;
        return;
    }
    if (code == MHD_CONNECTION_NOTIFY_CLOSED && c) {
        if (c->counted) {
            gw_iptab_close(srv->iptab, c->ip);
        }
        if (c->handle) {
            zlistx_delete(srv->conns, c->handle);
        }
        free(c);
        *socket_context = NULL;
    }
}

static s_conn_t *s_ctx(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void gw_conn_busy(struct MHD_Connection *conn, bool busy, bool upgraded)
{
    s_conn_t *c = s_ctx(conn);
    if (c) {
        c->busy = busy;
        c->upgraded = c->upgraded || upgraded;
        c->idle_since_ms = util_mono_ms();
    }
}

/* Shuts conn's socket down (after a 408 when answer is set): libmicrohttpd
   then reads the end and closes the connection. Returns 0, -1 without fd. */
static int s_cut(gw_server_t *srv, struct MHD_Connection *conn, bool answer)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) {
        return -1;
    }
    if (answer) {
        gw_error_t err;
        gw_error_set(&err, 408, "request_timeout", NULL,
                     "the request did not arrive within %ld ms (--request-deadline-ms)",
                     srv->cfg->request_deadline_ms);
        gw_edge_send_error(ci->connect_fd, &err, "Request Timeout");
        gw_metrics_http(srv->metrics, NULL, 408);
    }
    shutdown(ci->connect_fd, SHUT_RDWR);
    gw_server_kick(srv);
    return 0;
}

void gw_conn_tick(gw_server_t *srv, int64_t now_ms)
{
    for (gw_req_t *req = zlistx_first(srv->reqs); req; req = zlistx_next(srv->reqs)) {
        if (req->state == GW_REQ_RECEIVING && !req->cut && now_ms >= req->recv_deadline_ms) {
            LOG_I("%s %s cut: body not complete within %ld ms ip=%s", req->method, req->path,
                  srv->cfg->request_deadline_ms, req->ip);
            req->cut = s_cut(srv, req->conn, true) == 0;
        }
    }
    int64_t limit = srv->cfg->request_deadline_ms;
    for (s_conn_t *c = zlistx_first(srv->conns); c; c = zlistx_next(srv->conns)) {
        if (!c->busy && !c->upgraded && !c->cut && now_ms - c->idle_since_ms >= limit) {
            LOG_I("connection cut: no request within %ld ms ip=%s", limit, c->ip);
            c->cut = s_cut(srv, c->conn, false) == 0;
        }
    }
}
