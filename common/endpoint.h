/*  endpoint — bind versus advertise for the ZeroMQ endpoints a process
    publishes (a node's ROUTER and PUB, the registry's PUB). A process binds
    one endpoint (possibly a wildcard such as tcp://0.0.0.0:7110) and tells
    others another one (tcp://10.0.0.2:7110). Pure string functions; any thread. */
#ifndef BICKY_ENDPOINT_H
#define BICKY_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

/* True when endpoint is tcp:// with a wildcard host (*, 0.0.0.0, ::, [::]):
   bindable, but nothing another host can connect to. */
bool endpoint_is_wildcard(const char *endpoint);

/* Checks a bind/advertise pair before anything is bound. advertise may be
   NULL or "" (then bind is advertised, so it must not be a wildcard). A given
   advertise must be tcp://HOST[:PORT] with a concrete HOST when bind is tcp
   (PORT omitted or * = the port bound), and must be empty otherwise. Returns 0,
   or -1 with a message naming bind_flag and adv_flag in err. */
int endpoint_check(const char *bind_flag,
                   const char *bind,
                   const char *adv_flag,
                   const char *advertise,
                   char *err,
                   size_t errlen);

/* The endpoint to advertise: bound is what the socket reports after the bind
   (zsock_last_endpoint: wildcard port resolved), advertise the checked flag
   value (NULL/"" = bound). Writes it to out; returns 0, or -1 when it does
   not fit. */
int endpoint_advertised(const char *bound, const char *advertise, char *out, size_t outlen);

/* An endpoint a process on this host can connect to: bound with a wildcard
   host replaced by the loopback address (127.0.0.1, or ::1 for [::]).
   Returns 0, or -1 when it does not fit. */
int endpoint_local(const char *bound, char *out, size_t outlen);

#endif
