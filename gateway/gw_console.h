/*  gw_console — the web console's files, embedded at build time
    (console/CMakeLists.txt generates the table from the files of console/), and the
    handler that serves them at / and /console/<name>. The table is constant
    data; the handler runs on the gateway's loop thread. */
#ifndef BICKY_GATEWAY_GW_CONSOLE_H
#define BICKY_GATEWAY_GW_CONSOLE_H

#include <stddef.h>

typedef struct gw_req_t gw_req_t;

typedef struct {
    const char *name;          /* "index.html": a flat name, no '/' */
    const char *type;          /* Content-Type */
    const unsigned char *data; /* the file's bytes (NUL added after size) */
    size_t size;               /* bytes of data */
    const char *etag;          /* strong ETag with its quotes: part of the SHA-256 */
} gw_console_file_t;

/* The embedded files (generated) and their count. */
extern const gw_console_file_t gw_console_files[];
extern const size_t gw_console_files_count;

/* The embedded file called name (borrowed, static), or NULL: only names in
   the table are ever found, so no path can reach outside it. */
const gw_console_file_t *gw_console_find(const char *name);
/* GET/HEAD / (index.html) and /console/:file: the file with its
   Content-Type, ETag (304 on If-None-Match), Cache-Control and the strict
   security headers (CSP, nosniff); 404 JSON for a name not embedded. */
void gw_h_console(gw_req_t *req);

#endif
