/*  reg_ctl_import_follow — `bickyctl import --team NAME --follow URL`: mirrors
    a running old (TypeScript) server into a team. Each time its GET /stream
    opens, a full pass (GET /interactions, then GET /interactions/:id of
    each) upserts every interaction; then each interaction:* or message:*
    event re-fetches its interaction (the stream is a trigger, the record is
    the truth) and upserts it. A dropped stream is reopened with back-off,
    and the pass on opening catches up with what happened meanwhile. After
    a whole pass, the conversations mirrored from this URL (legacy_mirror)
    that the old server no longer lists are archived, as one answering 404
    is at once: the old server has no delete, it only loses interactions
    (a restart loses them all), and archiving is Bicky's delete. Every
    record goes through the importer's checks and staging (imp_record) with
    imp->follow set, which makes the batch's end an upsert keyed by the old
    ids. Single-threaded, blocking (the CLI has no loop). */
#include "common/util.h"
#include "registry/reg_ctl_import.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_BACKOFF_MIN_MS 500   /* first wait before reopening a stream */
#define S_BACKOFF_MAX_MS 30000 /* longest wait */
#define S_PASS_BATCH     100   /* interactions per transaction in a pass */

/* The interrupt flag (SIGINT, SIGTERM): the process-wide value STYLE.md allows. */
static volatile sig_atomic_t s_stop;

typedef struct {
    imp_t *imp;                      /* the importer (follow mode) */
    imp_http_t *http;                /* the old server */
    const char *url;                 /* its base URL (for messages) */
    long passes;                     /* full passes done */
    bool opened;                     /* the current stream opened */
    bool http_failed;                /* a GET failed during the stream: reopen and pass again */
    bool fatal;                      /* a database error: stop */
    long long handled;               /* stream events handled */
    char err[CURL_ERROR_SIZE + 256]; /* why the last GET failed */
} s_follow_t;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* Totals of imp, to print what one step changed. */
typedef struct {
    long long convs, msgs, conv_changed, msg_changed, refused, archived;
} s_counts_t;

static s_counts_t s_counts(const imp_t *imp)
{
    return (s_counts_t){imp->conversations, imp->messages, imp->conv_changed,
                        imp->msg_changed,   imp->refused,  imp->archived};
}

/* "2 new conversations, 5 new messages, …" since before, or "no change". */
static void s_changes(const imp_t *imp, const s_counts_t *before, char *out, size_t len)
{
    s_counts_t now = s_counts(imp);
    snprintf(out, len,
             "%lld new conversations, %lld new messages, %lld conversations and %lld messages "
             "changed, %lld refused, %lld archived",
             now.convs - before->convs, now.msgs - before->msgs,
             now.conv_changed - before->conv_changed, now.msg_changed - before->msg_changed,
             now.refused - before->refused, now.archived - before->archived);
}

/* Fetches interaction id and stages it. 0 (a refusal included), 1 when the
   GET failed (said why), -1 on a staging error. */
static int s_fetch_one(s_follow_t *f, const char *id, long line)
{
    uint8_t raw[16];
    char canon[37], path[64], err[CURL_ERROR_SIZE + 128];
    if (util_uuid_parse(id, raw) < 0) {
        imp_refuse(f->imp, line, NULL, "interaction id must be a UUID");
        return 0;
    }
    util_uuid_format(raw, canon);
    snprintf(path, sizeof path, "/interactions/%s", canon);
    char *body = NULL;
    int status = imp_http_get(f->http, path, &body, err, sizeof err);
    if (status < 0 || (status != 200 && status != 404)) {
        if (status >= 0) {
            snprintf(err, sizeof err, "HTTP %d", status);
        }
        snprintf(f->err, sizeof f->err, "GET %s: %s", path, err);
        if (!s_stop) { /* a signal's abort is no failure to report */
            printf("follow: GET %s failed: %s\n", path, err);
        }
        free(body);
        return 1;
    }
    if (status == 404) {
        /* Gone from the old server: its mirror is archived (the batch staged so
           far is committed first, so that it is not archived before it exists). */
        char ids[40];
        snprintf(ids, sizeof ids, "{%s}", canon);
        free(body);
        long long before = f->imp->archived;
        if (imp_db_flush(f->imp->db, f->imp) < 0 || imp_db_archive(f->imp->db, ids, true) < 0) {
            return -1;
        }
        printf("follow: interaction %s is gone from the old server%s\n", canon,
               f->imp->archived > before ? ": its conversation is archived" : "");
        return 0;
    }
    json_error_t jerr;
    json_t *rec = json_loads(body, JSON_REJECT_DUPLICATES, &jerr);
    free(body);
    if (!rec) {
        imp_refuse(f->imp, line, canon, "GET %s: invalid JSON at line %d: %s", path, jerr.line,
                   jerr.text);
        return 0;
    }
    /* The record must be the one asked for: it is stored under its own id. */
    const char *got = json_string_value(json_object_get(json_object_get(rec, "interaction"), "id"));
    char gc[37] = "";
    if (got && util_uuid_parse(got, raw) == 0) {
        util_uuid_format(raw, gc);
    }
    if (got && gc[0] && strcmp(gc, canon) != 0) {
        imp_refuse(f->imp, line, canon, "GET %s answered interaction %s", path, gc);
        json_decref(rec);
        return 0;
    }
    return imp_record(f->imp, rec, line) < 0 ? -1 : 0;
}

/* The ids list (GET /interactions) names, as a Postgres uuid[] literal
   (caller frees), or NULL on OOM. Ids that are no UUIDs are left out. */
static char *s_listed(const json_t *list)
{
    size_t cap = 3 + json_array_size(list) * 37, n = 0, i;
    char *out = malloc(cap);
    json_t *it;
    if (!out) {
        return NULL;
    }
    out[n++] = '{';
    json_array_foreach(list, i, it)
    {
        uint8_t raw[16];
        const char *id = json_string_value(json_object_get(it, "id"));
        if (id && util_uuid_parse(id, raw) == 0) {
            if (n > 1) {
                out[n++] = ',';
            }
            util_uuid_format(raw, out + n);
            n += 36;
        }
    }
    snprintf(out + n, cap - n, "}");
    return out;
}

/* After a whole pass: archives the mirrored conversations list no longer has
   (the old server has no delete; an interaction it lost is gone). 0 / -1. */
static int s_archive_gone(s_follow_t *f, const json_t *list)
{
    char *ids = s_listed(list);
    if (!ids) {
        reg_ctl_fail("out of memory");
        return -1;
    }
    int rc = imp_db_archive(f->imp->db, ids, false);
    free(ids);
    return rc;
}

/* One full pass: every interaction the old server lists, then the archiving
   of the mirrored ones it no longer lists. 0, 1 when a GET failed, -1 on a
   database error. */
static int s_pass(s_follow_t *f)
{
    char err[CURL_ERROR_SIZE + 128], why[256];
    char *body = NULL;
    s_counts_t before = s_counts(f->imp);
    int status = imp_http_get(f->http, "/interactions", &body, err, sizeof err);
    json_t *list = status == 200 ? json_loads(body, JSON_REJECT_DUPLICATES, NULL) : NULL;
    free(body);
    if (!json_is_array(list)) {
        if (status >= 0) {
            snprintf(err, sizeof err, status == 200 ? "not a JSON array" : "HTTP %d", status);
        }
        snprintf(f->err, sizeof f->err, "GET /interactions: %s", err);
        printf("follow: GET %s/interactions failed: %s\n", f->url, err);
        json_decref(list);
        return 1;
    }
    int rc = 0;
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it)
    {
        const char *id = json_string_value(json_object_get(it, "id"));
        if (!id) {
            imp_refuse(f->imp, (long)i + 1, NULL, "GET /interactions: item %zu has no id", i);
            continue;
        }
        rc = s_fetch_one(f, id, (long)i + 1);
        if (rc == 0 && i % S_PASS_BATCH == S_PASS_BATCH - 1) {
            rc = imp_db_flush(f->imp->db, f->imp);
        }
        if (rc != 0 || s_stop) {
            break;
        }
    }
    int frc = imp_db_flush(f->imp->db, f->imp);
    rc = rc == 0 ? frc : rc;
    if (rc == 0 && !s_stop) {
        rc = s_archive_gone(f, list);
    }
    f->passes++;
    s_changes(f->imp, &before, why, sizeof why);
    printf("follow: pass %ld%s: %zu interactions; %s\n", f->passes,
           rc == 0 && !s_stop ? "" : " (cut short)", json_array_size(list), why);
    json_decref(list);
    return rc;
}

/* The interaction an event is about, or NULL. */
static const char *s_event_id(const json_t *ev)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *d = json_object_get(ev, "data");
    if (!type || (strncmp(type, "interaction:", 12) != 0 && strncmp(type, "message:", 8) != 0)) {
        return NULL;
    }
    const char *id = json_string_value(json_object_get(d, "interactionId"));
    if (!id) {
        id = json_string_value(json_object_get(json_object_get(d, "interaction"), "id"));
    }
    if (!id) {
        id = json_string_value(json_object_get(json_object_get(d, "message"), "interactionId"));
    }
    return id;
}

/* The stream's callback: a pass when it opens, then one fetch per event. */
static int s_on_event(void *arg, const char *data)
{
    s_follow_t *f = arg;
    if (!data) {
        f->opened = true;
        printf("follow: stream open at %s/stream\n", f->url);
        int rc = s_pass(f);
        f->fatal = rc < 0;
        f->http_failed = rc > 0;
        return rc == 0 ? 0 : -1;
    }
    json_t *ev = json_loads(data, 0, NULL);
    const char *id = s_event_id(ev);
    if (!id) {
        json_decref(ev);
        return 0; /* another event type, or not ours to read */
    }
    s_counts_t before = s_counts(f->imp);
    char why[256];
    int rc = s_fetch_one(f, id, ++f->handled);
    rc = rc == 0 ? imp_db_flush(f->imp->db, f->imp) : rc;
    s_changes(f->imp, &before, why, sizeof why);
    printf("follow: %s %s: %s\n", json_string_value(json_object_get(ev, "type")), id, why);
    json_decref(ev);
    f->fatal = rc < 0;
    f->http_failed = rc > 0;
    return rc == 0 ? 0 : -1;
}

/* Sleeps ms, waking early on a signal. */
static void s_wait(int64_t ms)
{
    int64_t end = util_mono_ms() + ms;
    while (!s_stop && util_mono_ms() < end) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Follows the stream until a signal; an exit code. */
static int s_follow(s_follow_t *f)
{
    int64_t backoff = S_BACKOFF_MIN_MS;
    char err[CURL_ERROR_SIZE + 160];
    while (!s_stop) {
        f->opened = f->http_failed = false;
        err[0] = 0;
        int rc = imp_http_stream(f->http, "/stream", s_on_event, f, err, sizeof err);
        if (f->fatal) {
            return REG_CTL_EXIT_FAIL;
        }
        if (s_stop) {
            break;
        }
        if (f->passes == 0) {
            return reg_ctl_fail("cannot follow %s: %s", f->url, rc < 0 ? err : f->err);
        }
        backoff = f->opened && !f->http_failed ? S_BACKOFF_MIN_MS : backoff;
        printf("follow: stream %s: %s; reconnecting in %.1f s\n",
               rc < 0 ? "cannot be opened" : "dropped", rc == 1 ? "a GET failed" : err,
               (double)backoff / 1000.0);
        s_wait(backoff);
        backoff = backoff * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : backoff * 2;
    }
    return REG_CTL_EXIT_OK;
}

static void s_signals(void)
{
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Runs --once or the follower over a ready importer; an exit code. */
static int s_run(s_follow_t *f, bool once)
{
    int code;
    if (once) {
        int rc = s_pass(f);
        code = rc < 0            ? REG_CTL_EXIT_FAIL
               : s_stop          ? REG_CTL_EXIT_OK
               : rc > 0          ? reg_ctl_fail("cannot import from %s: %s", f->url, f->err)
               : f->imp->refused ? REG_CTL_EXIT_FAIL
                                 : REG_CTL_EXIT_OK;
    } else {
        code = s_follow(f);
    }
    const imp_t *imp = f->imp;
    printf("follow: stopped after %ld passes and %lld events: %lld conversations and %lld "
           "messages new, %lld conversations and %lld messages changed, %lld refused, %lld "
           "archived, in team %s\n",
           f->passes, f->handled, imp->conversations, imp->messages, imp->conv_changed,
           imp->msg_changed, imp->refused, imp->archived, imp->team);
    return code;
}

int imp_follow(reg_ctl_t *ctl, int argc, char **argv)
{
    const char *team = NULL, *url = NULL, *token = NULL;
    bool once = false;
    const cfg_opt_t opts[] = {
        {"--team", NULL, CFG_STR, &team, 0, 0, "team to import into (required; it must exist)"},
        {"--follow", NULL, CFG_STR, &url, 0, 0, "base URL of the running old server to mirror"},
        /* No environment binding here: --help prints bound values, and the
           token from BICKY_LEGACY_TOKEN must not show (read below). */
        {"--token", NULL, CFG_STR, &token, 0, 0,
         "bearer token for the old server, if it wants one (better: env BICKY_LEGACY_TOKEN)"},
        {"--once", NULL, CFG_BOOL, &once, 0, 0, "one full pass, then exit (no stream)"},
        {NULL, NULL, CFG_STR, NULL, 0, 0, NULL},
    };
    int rc = reg_ctl_parse(ctl, "--team NAME --follow URL [--token TOKEN] [--once]", opts, argc,
                           argv, 0, NULL);
    if (rc >= 0) {
        return rc;
    }
    if (!team || !*team || !url || !*url || ctl->json) {
        fprintf(stderr, "bickyctl import: --follow needs --team NAME and a URL (and no --json)\n");
        return REG_CTL_EXIT_USAGE;
    }
    token = token ? token : getenv("BICKY_LEGACY_TOKEN");
    setvbuf(stdout, NULL, _IOLBF, 0);
    s_signals();
    /* The URL recorded in legacy_mirror: "http://old:3000/" is "http://old:3000". */
    char *base = strdup(url);
    for (size_t n = base ? strlen(base) : 0; n > 1 && base[n - 1] == '/'; n--) {
        base[n - 1] = 0;
    }
    imp_t imp = {.team = team, .follow = true, .url = base, .report = json_array()};
    int code = REG_CTL_EXIT_FAIL;
    /* One stream: each step's counts are printed when its batch is committed. */
    imp.db = base ? imp_db_new(ctl, &imp, 1, &code) : NULL;
    if (imp.db && curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK) {
        s_follow_t f = {.imp = &imp, .url = url, .http = imp_http_new(url, token, &s_stop)};
        code = f.http ? s_run(&f, once) : reg_ctl_fail("out of memory");
        imp_http_destroy(&f.http);
        curl_global_cleanup();
    }
    imp_db_destroy(&imp.db);
    free(base);
    json_decref(imp.report);
    return code;
}
