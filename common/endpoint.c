/*  endpoint — bind versus advertise (see endpoint.h). */
#include "common/endpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TCP     "tcp://"
#define S_TCP_LEN 6

typedef struct {
    char host[256]; /* without brackets */
    char port[16];  /* "" when absent */
    bool bracketed; /* the host was written [like:this] */
} s_tcp_t;

/* Splits "tcp://HOST[:PORT]" (IPv6 hosts in brackets). -1 when it is not tcp
   or a part is empty or too long. */
static int s_split(const char *endpoint, s_tcp_t *out)
{
    memset(out, 0, sizeof *out);
    if (!endpoint || strncmp(endpoint, S_TCP, S_TCP_LEN) != 0) {
        return -1;
    }
    const char *h = endpoint + S_TCP_LEN, *end = NULL, *port = NULL;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        if (!close || (close[1] && close[1] != ':')) {
            return -1;
        }
        out->bracketed = true;
        end = close;
        port = close[1] ? close + 2 : NULL;
        h++;
    } else {
        const char *colon = strrchr(h, ':');
        end = colon ? colon : h + strlen(h);
        port = colon ? colon + 1 : NULL;
    }
    size_t hlen = (size_t)(end - h);
    if (hlen == 0 || hlen >= sizeof out->host || (port && strlen(port) >= sizeof out->port)) {
        return -1;
    }
    memcpy(out->host, h, hlen);
    if (port) {
        snprintf(out->port, sizeof out->port, "%s", port);
        if (!out->port[0]) {
            return -1;
        }
    }
    return 0;
}

static bool s_host_wildcard(const char *host)
{
    return strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ||
           strcmp(host, "0:0:0:0:0:0:0:0") == 0;
}

bool endpoint_is_wildcard(const char *endpoint)
{
    s_tcp_t t;
    return s_split(endpoint, &t) == 0 && s_host_wildcard(t.host);
}

static bool s_port_ok(const char *port)
{
    if (!port[0] || strcmp(port, "*") == 0) {
        return true;
    }
    char *end = NULL;
    long v = strtol(port, &end, 10);
    return port[0] >= '0' && port[0] <= '9' && *end == '\0' && v >= 1 && v <= 65535;
}

static bool s_host_ok(const char *host)
{
    for (const char *c = host; *c; c++) {
        if (*c <= ' ' || *c == '/' || *c == ';' || *c == '[' || *c == ']' || *c == '@') {
            return false;
        }
    }
    return true;
}

int endpoint_check(const char *bind_flag,
                   const char *bind,
                   const char *adv_flag,
                   const char *advertise,
                   char *err,
                   size_t errlen)
{
    bool has_adv = advertise && *advertise;
    bool tcp = bind && strncmp(bind, S_TCP, S_TCP_LEN) == 0;
    if (!bind || !*bind) {
        snprintf(err, errlen, "%s is empty", bind_flag);
        return -1;
    }
    if (!has_adv) {
        if (endpoint_is_wildcard(bind)) {
            snprintf(err, errlen,
                     "%s %s binds every interface; give %s tcp://ADDRESS[:PORT], the address "
                     "others connect to",
                     bind_flag, bind, adv_flag);
            return -1;
        }
        return 0;
    }
    s_tcp_t t;
    if (!tcp) {
        snprintf(err, errlen, "%s applies to a tcp:// %s only", adv_flag, bind_flag);
        return -1;
    }
    if (s_split(advertise, &t) < 0 || !s_host_ok(t.host) || !s_port_ok(t.port) ||
        (strchr(t.host, ':') && !t.bracketed)) {
        snprintf(err, errlen,
                 "%s '%s' is not tcp://HOST[:PORT] (IPv6 in brackets, PORT 1-65535 or *)", adv_flag,
                 advertise);
        return -1;
    }
    if (s_host_wildcard(t.host)) {
        snprintf(err, errlen, "%s '%s' is a wildcard; give an address others can connect to",
                 adv_flag, advertise);
        return -1;
    }
    return 0;
}

int endpoint_advertised(const char *bound, const char *advertise, char *out, size_t outlen)
{
    if (!advertise || !*advertise) {
        return snprintf(out, outlen, "%s", bound) < (int)outlen ? 0 : -1;
    }
    s_tcp_t adv, b;
    if (s_split(advertise, &adv) < 0) {
        return -1;
    }
    const char *port = adv.port;
    if (!port[0] || strcmp(port, "*") == 0) {
        port = s_split(bound, &b) == 0 ? b.port : "";
    }
    int n = adv.bracketed ? snprintf(out, outlen, S_TCP "[%s]:%s", adv.host, port)
                          : snprintf(out, outlen, S_TCP "%s:%s", adv.host, port);
    return n < (int)outlen ? 0 : -1;
}

int endpoint_local(const char *bound, char *out, size_t outlen)
{
    s_tcp_t t;
    int n;
    if (s_split(bound, &t) < 0 || !s_host_wildcard(t.host)) {
        n = snprintf(out, outlen, "%s", bound);
    } else if (strchr(t.host, ':')) {
        n = snprintf(out, outlen, S_TCP "[::1]:%s", t.port);
    } else {
        n = snprintf(out, outlen, S_TCP "127.0.0.1:%s", t.port);
    }
    return n < (int)outlen ? 0 : -1;
}
