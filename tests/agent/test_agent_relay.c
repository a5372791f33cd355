/*  test_agent_relay — the model relay over real sockets, with
    tests/fixtures/fake_llm.py as the upstream and libcurl as the client (the
    CLI's part): a live token is forwarded with the real key in its place
    (x-api-key or Bearer) and the SSE answer streams through as it comes; a
    wrong, missing or revoked token gets 401 and nothing reaches the
    upstream; oversized bodies, other methods and paths are refused without
    forwarding; upstream errors pass through, an unreachable upstream is 502;
    a client that goes away, or a token revoked mid-stream, ends the upstream
    call; the unix socket (the sandboxed CLI's way in) is served even when its
    path is too long for one, from a private directory that goes at destroy. */
#include "node/agent/agent_relay.h"
#include "tests/fixtures/llm_fake.h"
#include "tests/fixtures/tf_net.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_KEY "sk-real-key-MARKER-7f3a"

static llm_fake_t s_fake;
static agent_relay_t *s_relay;
static char s_upstream[64];

static void s_setup(void)
{
    llm_fake_start(&s_fake);
    snprintf(s_upstream, sizeof s_upstream, "http://127.0.0.1:%d", s_fake.port);
    s_relay = agent_relay_new(&(agent_relay_cfg_t){.max_body = 64 * 1024});
    cr_assert_not_null(s_relay);
}

static void s_teardown(void)
{
    agent_relay_destroy(&s_relay);
    cr_assert_null(s_relay);
    agent_relay_destroy(&s_relay); /* twice is fine */
    llm_fake_stop(&s_fake);
}

TestSuite(agent_relay, .init = s_setup, .fini = s_teardown, .timeout = 60);

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One client request and what came back. */
typedef struct {
    const char *method, *path, *body; /* request (body NULL: none) */
    const char *hdr[4];               /* extra request headers */
    const char *stop_at;              /* hang up once the body holds this */
    const char *sock;                 /* over this unix socket (NULL: TCP) */
    long status;                      /* answer */
    char ctype[128];                  /* its Content-Type */
    char data[65536];                 /* its body (truncated) */
    size_t len;                       /* bytes received */
    double t_start, t_first, t_end;   /* monotonic seconds */
    CURLcode rc;                      /* curl's result */
} s_call_t;

static size_t s_on_data(char *p, size_t size, size_t n, void *arg)
{
    s_call_t *c = arg;
    size_t len = size * n;
    if (!c->t_first) {
        c->t_first = s_now();
    }
    size_t room = sizeof c->data - 1 - c->len;
    memcpy(c->data + c->len, p, len < room ? len : room);
    c->len += len < room ? len : room;
    c->data[c->len] = '\0';
    return c->stop_at && strstr(c->data, c->stop_at) ? 0 : len;
}

static void s_do(s_call_t *c)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", agent_relay_url(s_relay), c->path);
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;
    for (size_t i = 0; i < 4 && c->hdr[i]; i++) {
        h = curl_slist_append(h, c->hdr[i]);
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
    if (c->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    if (c->sock) {
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, c->sock);
    }
    c->t_start = s_now();
    c->rc = curl_easy_perform(e);
    c->t_end = s_now();
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &c->status);
    char *ct = NULL;
    curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(c->ctype, sizeof c->ctype, "%s", ct ? ct : "");
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
}

static const char s_msg[] = "{\"model\":\"m\",\"stream\":true,\"max_tokens\":16,"
                            "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

static void s_grant(agent_relay_auth_t auth, char token[AGENT_RELAY_TOKEN_LEN + 1])
{
    cr_assert_eq(agent_relay_grant(s_relay, s_upstream, S_KEY, auth, token), 0);
    cr_assert_eq(strlen(token), AGENT_RELAY_TOKEN_LEN);
    cr_assert_eq(strspn(token, "0123456789abcdef"), AGENT_RELAY_TOKEN_LEN);
}

static size_t s_nrequests(void)
{
    json_t *reqs = llm_fake_requests(&s_fake);
    size_t n = json_array_size(reqs);
    json_decref(reqs);
    return n;
}

/* The outcome of the fake's first request, waited for until it is not "open". */
static char *s_outcome(double max_s)
{
    double until = s_now() + max_s;
    for (;;) {
        json_t *reqs = llm_fake_requests(&s_fake);
        const char *o = json_string_value(json_object_get(json_array_get(reqs, 0), "outcome"));
        char *copy = o ? strdup(o) : NULL;
        json_decref(reqs);
        if ((copy && strcmp(copy, "open") != 0) || s_now() > until) {
            return copy;
        }
        free(copy);
        usleep(20 * 1000);
    }
}

Test(agent_relay, forwards_with_the_real_key_and_streams)
{
    char token[AGENT_RELAY_TOKEN_LEN + 1], hdr[128];
    s_grant(AGENT_RELAY_AUTH_X_API_KEY, token);
    cr_assert_eq(agent_relay_live(s_relay), 1);
    /* 12 events 120 ms apart: a relay that held the reply would deliver it all at the end. */
    llm_fake_script(&s_fake, "[{\"kind\":\"text\",\"delay_ms\":120,"
                             "\"deltas\":[\"one \",\"two \",\"three \",\"four\"]}]");
    snprintf(hdr, sizeof hdr, "x-api-key: %s", token);
    s_call_t c = {.method = "POST",
                  .path = "/v1/messages?beta=true",
                  .body = s_msg,
                  .hdr = {hdr, "anthropic-version: 2023-06-01"}};
    s_do(&c);
    cr_assert_eq(c.rc, CURLE_OK, "%s", curl_easy_strerror(c.rc));
    cr_assert_eq(c.status, 200);
    cr_assert_str_eq(c.ctype, "text/event-stream");
    cr_assert_not_null(strstr(c.data, "event: message_stop"));
    cr_assert_not_null(strstr(c.data, "\"text\": \"three \""));
    cr_assert_gt(c.t_end - c.t_first, 0.6, "streamed: first byte %.3f s, end %.3f s",
                 c.t_first - c.t_start, c.t_end - c.t_start);
    json_t *reqs = llm_fake_requests(&s_fake);
    cr_assert_eq(json_array_size(reqs), 1);
    json_t *r = json_array_get(reqs, 0);
    json_t *h = json_object_get(r, "headers");
    cr_assert_str_eq(json_string_value(json_object_get(r, "path")), "/v1/messages?beta=true");
    cr_assert_str_eq(json_string_value(json_object_get(h, "x-api-key")), S_KEY);
    cr_assert_null(json_object_get(h, "authorization"));
    cr_assert_str_eq(json_string_value(json_object_get(h, "anthropic-version")), "2023-06-01");
    cr_assert_eq(json_is_true(json_object_get(json_object_get(r, "body"), "stream")), 1);
    char *all = json_dumps(reqs, 0);
    cr_assert_null(strstr(all, token), "the token never reaches the upstream");
    free(all);
    json_decref(reqs);
    agent_relay_stats_t st;
    agent_relay_stats(s_relay, &st);
    cr_assert_eq(st.requests, 1);
    cr_assert_eq(st.forwarded, 1);
    cr_assert_eq(st.cut, 0);
}

Test(agent_relay, bearer_in_bearer_out)
{
    char token[AGENT_RELAY_TOKEN_LEN + 1], hdr[128];
    s_grant(AGENT_RELAY_AUTH_BEARER, token);
    snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", token);
    s_call_t c = {.method = "POST", .path = "/v1/messages", .body = s_msg, .hdr = {hdr}};
    s_do(&c);
    cr_assert_eq(c.status, 200);
    json_t *reqs = llm_fake_requests(&s_fake);
    json_t *h = json_object_get(json_array_get(reqs, 0), "headers");
    cr_assert_str_eq(json_string_value(json_object_get(h, "authorization")), "Bearer " S_KEY);
    cr_assert_null(json_object_get(h, "x-api-key"));
    json_decref(reqs);
}

Test(agent_relay, no_key_no_auth_header)
{
    char token[AGENT_RELAY_TOKEN_LEN + 1], hdr[128];
    cr_assert_eq(agent_relay_grant(s_relay, s_upstream, NULL, AGENT_RELAY_AUTH_X_API_KEY, token),
                 0);
    snprintf(hdr, sizeof hdr, "x-api-key: %s", token);
    s_call_t c = {.method = "POST", .path = "/v1/messages", .body = s_msg, .hdr = {hdr}};
    s_do(&c);
    cr_assert_eq(c.status, 200);
    json_t *reqs = llm_fake_requests(&s_fake);
    json_t *h = json_object_get(json_array_get(reqs, 0), "headers");
    cr_assert_null(json_object_get(h, "x-api-key"));
    cr_assert_null(json_object_get(h, "authorization"));
    json_decref(reqs);
}

Test(agent_relay, bad_tokens_get_401_and_reach_nothing)
{
    char token[AGENT_RELAY_TOKEN_LEN + 1], other[AGENT_RELAY_TOKEN_LEN + 1];
    s_grant(AGENT_RELAY_AUTH_X_API_KEY, token);
    s_grant(AGENT_RELAY_AUTH_X_API_KEY, other);
    cr_assert_str_neq(token, other);
    agent_relay_revoke(s_relay, other);
    cr_assert_eq(agent_relay_live(s_relay), 1);
    char wrong[AGENT_RELAY_TOKEN_LEN + 1];
    memcpy(wrong, token, sizeof wrong);
    wrong[AGENT_RELAY_TOKEN_LEN - 1] = wrong[AGENT_RELAY_TOKEN_LEN - 1] == 'a' ? 'b' : 'a';
    char h_wrong[128], h_revoked[128], h_short[128], h_real[128], h_bearer_revoked[128];
    snprintf(h_wrong, sizeof h_wrong, "x-api-key: %s", wrong);
    snprintf(h_revoked, sizeof h_revoked, "x-api-key: %s", other);
    snprintf(h_short, sizeof h_short, "x-api-key: %.20s", token);
    snprintf(h_real, sizeof h_real, "x-api-key: %s", S_KEY);
    snprintf(h_bearer_revoked, sizeof h_bearer_revoked, "Authorization: Bearer %s", other);
    const char *cases[][2] = {
        {"POST", h_wrong}, {"POST", h_revoked}, {"POST", h_short},          {"POST", h_real},
        {"POST", NULL},    {"GET", h_wrong},    {"POST", h_bearer_revoked}, {"DELETE", h_wrong},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_call_t c = {.method = cases[i][0],
                      .path = "/v1/messages?beta=true",
                      .body = s_msg,
                      .hdr = {cases[i][1]}};
        s_do(&c);
        cr_assert_eq(c.status, 401, "case %zu: %ld", i, c.status);
        cr_assert_str_eq(c.ctype, "application/json");
        json_t *j = json_loads(c.data, 0, NULL);
        cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "error");
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
                         "authentication_error");
        json_decref(j);
    }
    /* The warm-up the CLI sends without a key is refused the same way. */
    s_call_t head = {.method = "HEAD", .path = "/"};
    s_do(&head);
    cr_assert_eq(head.status, 401);
    cr_assert_eq(s_nrequests(), 0, "nothing reached the upstream");
    agent_relay_revoke(s_relay, token);
    agent_relay_revoke(s_relay, token); /* a dead token is ignored */
    agent_relay_revoke(s_relay, "short");
    cr_assert_eq(agent_relay_live(s_relay), 0);
    char hdr[128];
    snprintf(hdr, sizeof hdr, "x-api-key: %s", token);
    s_call_t c = {.method = "POST", .path = "/v1/messages", .body = s_msg, .hdr = {hdr}};
    s_do(&c);
    cr_assert_eq(c.status, 401, "a token is dead once revoked");
    agent_relay_stats_t st;
    agent_relay_stats(s_relay, &st);
    cr_assert_eq(st.refused, 10);
    cr_assert_eq(st.forwarded, 0);
    cr_assert_eq(s_nrequests(), 0);
}

Test(agent_relay, refuses_oversize_other_methods_and_paths)
{
    char token[AGENT_RELAY_TOKEN_LEN + 1], hdr[128];
    s_grant(AGENT_RELAY_AUTH_X_API_KEY, token);
    snprintf(hdr, sizeof hdr, "x-api-key: %s", token);
    char *big = malloc(64 * 1024 + 2);
    memset(big, 'x', 64 * 1024 + 1);
    big[64 * 1024 + 1] = '\0';
    s_call_t c = {.method = "POST", .path = "/v1/messages", .body = big, .hdr = {hdr}};
    s_do(&c);
    cr_assert_eq(c.status, 413);
    /* The same without a Content-Length: a chunked body is counted as it comes. */
    s_call_t ch = {.method = "POST",
                   .path = "/v1/messages",
                   .body = big,
                   .hdr = {hdr, "Transfer-Encoding: chunked"}};
    s_do(&ch);
    cr_assert_eq(ch.status, 413);
    free(big);
    s_call_t del = {.method = "DELETE", .path = "/v1/messages", .hdr = {hdr}};
    s_do(&del);
    cr_assert_eq(del.status, 405);
    const char *paths[] = {"/_script", "/", "/v1/../_reset", "/v2/messages", "/v1%2f"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        s_call_t p = {.method = "POST", .path = paths[i], .body = "[]", .hdr = {hdr}};
        s_do(&p);
        cr_assert_eq(p.status, 404, "%s: %ld", paths[i], p.status);
    }
    cr_assert_eq(s_nrequests(), 0, "nothing reached the upstream");
    agent_relay_stats_t st;
    agent_relay_stats(s_relay, &st);
    cr_assert_eq(st.rejected, 8);
    /* A body just under the bound still goes through. */
    s_call_t ok = {.method = "POST", .path = "/v1/messages", .body = s_msg, .hdr = {hdr}};
    s_do(&ok);
    cr_assert_eq(ok.status, 200);
}

Test(agent_relay, upstream_errors_pass_through)
{
    char token[AGENT_RELAY_TOKEN_LEN + 1], hdr[128];
    s_grant(AGENT_RELAY_AUTH_X_API_KEY, token);
    snprintf(hdr, sizeof hdr, "x-api-key: %s", token);
    llm_fake_script(&s_fake, "[{\"kind\":\"http_error\",\"status\":529,"
                             "\"error_type\":\"overloaded_error\",\"message\":\"busy now\"}]");
    s_call_t c = {.method = "POST", .path = "/v1/messages", .body = s_msg, .hdr = {hdr}};
    s_do(&c);
    cr_assert_eq(c.status, 529);
    cr_assert_str_eq(c.ctype, "application/json");
    cr_assert_not_null(strstr(c.data, "busy now"), "%s", c.data);
    /* GET goes through too, and the upstream's 404 comes back as it is. */
    s_call_t g = {.method = "GET", .path = "/v1/models", .hdr = {hdr}};
    s_do(&g);
    cr_assert_eq(g.status, 404);
    cr_assert_not_null(strstr(g.data, "not_found"));
}

Test(agent_relay, unreachable_upstream_is_502)
{
    char token[AGENT_RELAY_TOKEN_LEN + 1], hdr[128], dead[64];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d", tf_refused_port());
    cr_assert_eq(agent_relay_grant(s_relay, dead, S_KEY, AGENT_RELAY_AUTH_X_API_KEY, token), 0);
    snprintf(hdr, sizeof hdr, "x-api-key: %s", token);
    s_call_t c = {.method = "POST", .path = "/v1/messages", .body = s_msg, .hdr = {hdr}};
    s_do(&c);
    cr_assert_eq(c.status, 502);
    cr_assert_not_null(strstr(c.data, "upstream unreachable"), "%s", c.data);
    cr_assert_null(strstr(c.data, S_KEY));
    cr_assert_eq(agent_relay_grant(s_relay, "ftp://x", S_KEY, AGENT_RELAY_AUTH_X_API_KEY, token),
                 -1);
    cr_assert_eq(agent_relay_grant(s_relay, "http://a b", NULL, AGENT_RELAY_AUTH_X_API_KEY, token),
                 -1);
}

static const char s_stall[] =
    "[{\"kind\":\"stalled\",\"stall_s\":30,\"deltas\":[\"a \",\"b \",\"c\"]}]";

Test(agent_relay, client_gone_mid_stream_ends_the_upstream_call)
{
    char token[AGENT_RELAY_TOKEN_LEN + 1], hdr[128];
    s_grant(AGENT_RELAY_AUTH_X_API_KEY, token);
    snprintf(hdr, sizeof hdr, "x-api-key: %s", token);
    llm_fake_script(&s_fake, s_stall);
    /* Hang up once the last delta before the stall is in: the upstream is silent
       then, so only the relay's watch on the client's socket can notice. */
    s_call_t c = {
        .method = "POST", .path = "/v1/messages", .body = s_msg, .hdr = {hdr}, .stop_at = "\"b \""};
    s_do(&c);
    cr_assert_eq(c.rc, CURLE_WRITE_ERROR);
    double gone = s_now();
    char *outcome = s_outcome(10);
    cr_assert_str_eq(outcome, "client_gone", "the upstream saw the relay hang up");
    free(outcome);
    cr_assert_lt(s_now() - gone, 5.0);
    agent_relay_stats_t st;
    agent_relay_stats(s_relay, &st);
    cr_assert_eq(st.forwarded, 1);
    cr_assert_eq(st.cut, 1);
}

static void *s_client(void *arg)
{
    s_do(arg);
    return NULL;
}

Test(agent_relay, revoked_token_cuts_its_stream)
{
    char token[AGENT_RELAY_TOKEN_LEN + 1], hdr[128];
    s_grant(AGENT_RELAY_AUTH_X_API_KEY, token);
    snprintf(hdr, sizeof hdr, "x-api-key: %s", token);
    llm_fake_script(&s_fake, s_stall);
    s_call_t c = {.method = "POST", .path = "/v1/messages", .body = s_msg, .hdr = {hdr}};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_client, &c), 0);
    double until = s_now() + 10;
    while (s_nrequests() == 0 && s_now() < until) {
        usleep(20 * 1000);
    }
    cr_assert_eq(s_nrequests(), 1);
    agent_relay_revoke(s_relay, token); /* the run ended */
    char *outcome = s_outcome(10);
    cr_assert_str_eq(outcome, "client_gone");
    free(outcome);
    pthread_join(th, NULL);
    cr_assert_neq(c.rc, CURLE_OK, "the client's stream ended early");
    cr_assert_lt(c.t_end - c.t_start, 10.0);
}

Test(agent_relay, destroy_ends_open_streams)
{
    char token[AGENT_RELAY_TOKEN_LEN + 1], hdr[128];
    s_grant(AGENT_RELAY_AUTH_X_API_KEY, token);
    snprintf(hdr, sizeof hdr, "x-api-key: %s", token);
    llm_fake_script(&s_fake, s_stall);
    s_call_t c = {.method = "POST", .path = "/v1/messages", .body = s_msg, .hdr = {hdr}};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_client, &c), 0);
    double until = s_now() + 10;
    while (s_nrequests() == 0 && s_now() < until) {
        usleep(20 * 1000);
    }
    double t0 = s_now();
    agent_relay_destroy(&s_relay);
    cr_assert_lt(s_now() - t0, 5.0, "destroy does not wait for the upstream");
    pthread_join(th, NULL);
    cr_assert_neq(c.rc, CURLE_OK);
    char *outcome = s_outcome(10);
    cr_assert_str_eq(outcome, "client_gone");
    free(outcome);
}

Test(agent_relay, fixed_port_and_busy_port)
{
    int port = agent_relay_port(s_relay);
    cr_assert_gt(port, 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    cr_assert_str_eq(agent_relay_url(s_relay), url);
    cr_assert_null(agent_relay_new(&(agent_relay_cfg_t){.port = port}), "the port is taken");
    cr_assert_null(agent_relay_new(&(agent_relay_cfg_t){.port = 70000}));
    int free_port = tf_free_port();
    agent_relay_t *r = agent_relay_new(&(agent_relay_cfg_t){.port = free_port});
    cr_assert_not_null(r);
    cr_assert_eq(agent_relay_port(r), free_port);
    agent_relay_destroy(&r);
    cr_assert_null(r);
}

/* The node asks for --work-dir/pids/relay-<id>.sock: past 107 bytes no unix socket
   can have that path, and the sandboxed CLI would have no way to the relay. */
Test(agent_relay, a_unix_socket_path_too_long_moves_to_a_private_dir)
{
    char wd[160], want[PATH_MAX];
    snprintf(wd, sizeof wd, "/tmp/bicky-relay-test-%d-%0100d", (int)getpid(), 0);
    cr_assert_eq(mkdir(wd, 0700), 0);
    snprintf(want, sizeof want, "%s/relay-n1.sock", wd);
    cr_assert_gt(strlen(want), 107);
    agent_relay_destroy(&s_relay);
    s_relay = agent_relay_new(&(agent_relay_cfg_t){.unix_path = want});
    cr_assert_not_null(s_relay);
    char got[128], dir[128];
    snprintf(got, sizeof got, "%s", agent_relay_unix_path(s_relay));
    cr_assert_eq(strncmp(got, "/tmp/bicky-", 11), 0, "unix socket: '%s'", got);
    cr_assert_lt(strlen(got), 108);
    cr_assert_str_eq(strrchr(got, '/'), "/relay-n1.sock");
    snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(got, '/') - got), got);
    struct stat st;
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0700, "directory mode %o", st.st_mode & 07777);
    cr_assert_eq(st.st_uid, getuid());
    cr_assert_eq(lstat(got, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0600, "socket mode %o", st.st_mode & 0777);
    cr_assert_neq(access(want, F_OK), 0, "nothing at the long path");
    /* It is the relay: no token 401, a live one forwarded. */
    s_call_t bad = {.method = "POST", .path = "/v1/messages", .body = s_msg, .sock = got};
    s_do(&bad);
    cr_assert_eq(bad.rc, CURLE_OK, "%s", curl_easy_strerror(bad.rc));
    cr_assert_eq(bad.status, 401);
    char token[AGENT_RELAY_TOKEN_LEN + 1], hdr[128];
    cr_assert_eq(agent_relay_grant(s_relay, s_upstream, S_KEY, AGENT_RELAY_AUTH_X_API_KEY, token),
                 0);
    snprintf(hdr, sizeof hdr, "x-api-key: %s", token);
    s_call_t ok = {
        .method = "POST", .path = "/v1/messages", .body = s_msg, .hdr = {hdr}, .sock = got};
    s_do(&ok);
    cr_assert_eq(ok.status, 200);
    cr_assert_eq(s_nrequests(), 1);
    /* Destroy takes the socket and its directory. */
    agent_relay_destroy(&s_relay);
    cr_assert_neq(access(got, F_OK), 0, "%s is left", got);
    cr_assert_neq(access(dir, F_OK), 0, "%s is left", dir);
    rmdir(wd);
}

Test(agent_relay, a_short_unix_socket_path_is_used_as_it_is)
{
    char want[96];
    snprintf(want, sizeof want, "/tmp/bicky-relay-short-%d.sock", (int)getpid());
    agent_relay_destroy(&s_relay);
    s_relay = agent_relay_new(&(agent_relay_cfg_t){.unix_path = want});
    cr_assert_not_null(s_relay);
    cr_assert_str_eq(agent_relay_unix_path(s_relay), want);
    s_call_t bad = {.method = "POST", .path = "/v1/messages", .body = s_msg, .sock = want};
    s_do(&bad);
    cr_assert_eq(bad.status, 401);
    agent_relay_destroy(&s_relay);
    cr_assert_neq(access(want, F_OK), 0, "%s is left", want);
}
