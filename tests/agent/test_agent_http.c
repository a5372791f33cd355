/*  test_agent_http — curl multi on a zloop against the real fake_llm.py:
    plain requests, many at once, statuses, a transfer started and one
    cancelled from inside on_data (deferred past curl's callback), the stall
    watchdog, and destroy with transfers in flight. */
#include "node/agent/agent_http.h"

#include "common/util.h"
#include "tests/fixtures/llm_fake.h"

#include <criterion/criterion.h>

typedef struct {
    char body[65536];        /* response body */
    size_t len;              /* its length */
    long status;             /* status seen by on_data */
    int data_calls;          /* on_data calls */
    bool done;               /* on_done ran */
    agent_http_result_t res; /* its result (error not kept) */
    agent_http_t *http;      /* client, for callbacks that start/cancel */
    agent_http_req_t *req;   /* the request while it runs */
    agent_http_req_t *other; /* a request to cancel from on_data */
    int *pending;            /* shared count of unfinished requests */
} s_xfer_t;

static llm_fake_t s_fake;
static zloop_t *s_loop;
static agent_http_t *s_http;

static void s_setup(void)
{
    llm_fake_start(&s_fake);
    s_loop = zloop_new();
    s_http = agent_http_new(s_loop);
    cr_assert_not_null(s_http);
}

static void s_teardown(void)
{
    agent_http_destroy(&s_http);
    cr_assert_null(s_http);
    zloop_destroy(&s_loop);
    llm_fake_stop(&s_fake);
}

TestSuite(agent_http, .init = s_setup, .fini = s_teardown, .timeout = 30);

static int s_on_data(void *arg, long status, const char *data, size_t len)
{
    s_xfer_t *x = arg;
    x->status = status;
    x->data_calls++;
    size_t n = len < sizeof x->body - 1 - x->len ? len : sizeof x->body - 1 - x->len;
    memcpy(x->body + x->len, data, n);
    x->len += n;
    x->body[x->len] = '\0';
    if (x->other) {
        agent_http_cancel(x->http, &x->other);
    }
    return 0;
}

static void s_on_done(void *arg, const agent_http_result_t *res)
{
    s_xfer_t *x = arg;
    cr_assert_not(x->done, "on_done runs once");
    x->done = true;
    x->res = *res;
    x->res.error = NULL;
    x->req = NULL;
    if (x->pending) {
        (*x->pending)--;
    }
}

static const agent_http_callbacks_t s_cb = {s_on_data, s_on_done};

static int s_on_tick(zloop_t *loop, int timer_id, void *arg)
{
    return *(int *)arg <= 0 ? -1 : 0;
}

static int s_on_deadline(zloop_t *loop, int timer_id, void *arg)
{
    return -1;
}

/* Runs the loop until *pending drops to 0 or max_ms passes. */
static void s_run(int *pending, int max_ms)
{
    int tick = zloop_timer(s_loop, 5, 0, s_on_tick, pending);
    int deadline = zloop_timer(s_loop, (size_t)max_ms, 1, s_on_deadline, NULL);
    zloop_start(s_loop);
    zloop_timer_end(s_loop, tick);
    zloop_timer_end(s_loop, deadline);
}

static agent_http_req_t *s_get(s_xfer_t *x, const char *method, const char *path, long stall_s)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s_fake.port, path);
    agent_http_opts_t o = {.method = method, .url = url, .timeout_ms = 10000, .stall_s = stall_s};
    x->http = s_http;
    x->req = agent_http_start(s_http, &o, &s_cb, x);
    return x->req;
}

Test(agent_http, get_head_and_404)
{
    int pending = 3;
    s_xfer_t a = {.pending = &pending}, b = {.pending = &pending}, c = {.pending = &pending};
    cr_assert_not_null(s_get(&a, "GET", "/", 0));
    cr_assert_not_null(s_get(&b, "HEAD", "/", 0));
    cr_assert_not_null(s_get(&c, "GET", "/nope", 0));
    cr_assert_eq(agent_http_active(s_http), 3);
    s_run(&pending, 10000);
    cr_assert(a.done && b.done && c.done);
    cr_assert_eq(a.res.status, 200);
    cr_assert_eq(a.res.curl_code, 0);
    cr_assert(strstr(a.body, "\"ok\""), "%s", a.body);
    cr_assert_eq(b.res.status, 200);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(c.res.status, 404);
    cr_assert_eq(c.status, 404, "on_data sees the status");
    cr_assert_eq(agent_http_active(s_http), 0);
}

Test(agent_http, many_posts_at_once)
{
    enum { N = 40 };
    static s_xfer_t x[N];
    int pending = N;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", s_fake.port);
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}]}";
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    for (int i = 0; i < N; i++) {
        x[i].pending = &pending;
        agent_http_opts_t o = {.url = url,
                               .headers = hdrs,
                               .body = body,
                               .body_len = strlen(body),
                               .timeout_ms = 20000};
        cr_assert_not_null(agent_http_start(s_http, &o, &s_cb, &x[i]));
    }
    s_run(&pending, 25000);
    for (int i = 0; i < N; i++) {
        cr_assert(x[i].done, "request %d", i);
        cr_assert_eq(x[i].res.status, 200);
        cr_assert(strstr(x[i].body, "\"ping\""), "request %d: %s", i, x[i].body);
        cr_assert(strstr(x[i].body, "[DONE]"));
    }
}

static int s_start_from_data(void *arg, long status, const char *data, size_t len)
{
    s_xfer_t *x = arg;
    s_xfer_t *next = (s_xfer_t *)x->other;
    x->other = NULL;
    if (next) {
        cr_assert_not_null(s_get(next, "GET", "/", 0), "start inside curl's callback");
    }
    return 0;
}

Test(agent_http, start_and_cancel_from_inside_on_data)
{
    int pending = 1;
    s_xfer_t first = {.pending = &pending}, second = {.pending = &pending};
    s_xfer_t victim = {0};
    llm_fake_script(&s_fake, "[{\"kind\":\"stalled\",\"stall_s\":20}]");
    cr_assert_not_null(s_get(&victim, "POST", "/chat/completions", 0));
    /* first's on_data cancels victim (stalled, so still in flight). */
    first.other = victim.req;
    cr_assert_not_null(s_get(&first, "GET", "/", 0));
    pending = 1;
    s_run(&pending, 3000);
    cr_assert(first.done);
    cr_assert_not(victim.done, "a cancelled transfer gets no on_done");

    agent_http_callbacks_t cb = {s_start_from_data, s_on_done};
    s_xfer_t starter = {.pending = &pending, .other = (agent_http_req_t *)&second};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s_fake.port);
    agent_http_opts_t o = {.url = url, .timeout_ms = 10000};
    pending = 2;
    cr_assert_not_null(agent_http_start(s_http, &o, &cb, &starter));
    s_run(&pending, 10000);
    cr_assert(starter.done);
    cr_assert(second.done, "the transfer started inside on_data ran");
    cr_assert_eq(second.res.status, 200);
    cr_assert_eq(agent_http_active(s_http), 0);
}

static int s_abort(void *arg, long status, const char *data, size_t len)
{
    return -1;
}

Test(agent_http, on_data_abort_and_stall_watchdog)
{
    int pending = 1;
    s_xfer_t a = {.pending = &pending};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s_fake.port);
    agent_http_opts_t o = {.url = url, .timeout_ms = 10000};
    agent_http_callbacks_t cb = {s_abort, s_on_done};
    cr_assert_not_null(agent_http_start(s_http, &o, &cb, &a));
    s_run(&pending, 10000);
    cr_assert(a.done && a.res.aborted);
    cr_assert_neq(a.res.curl_code, 0);

    llm_fake_script(&s_fake, "[{\"kind\":\"stalled\",\"stall_s\":20}]");
    s_xfer_t b = {.pending = &pending};
    pending = 1;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/chat/completions", s_fake.port);
    agent_http_opts_t so = {.url = url, .body = "{}", .body_len = 2, .stall_s = 1};
    int64_t t0 = util_mono_ms();
    cr_assert_not_null(agent_http_start(s_http, &so, &s_cb, &b));
    s_run(&pending, 10000);
    int64_t ms = util_mono_ms() - t0;
    cr_assert(b.done && b.res.timed_out);
    cr_assert_eq(b.res.status, 200);
    cr_assert(ms >= 950 && ms < 3000, "stall noticed after %ld ms", (long)ms);
}

Test(agent_http, bad_url_and_destroy_in_flight)
{
    s_xfer_t x = {0};
    agent_http_opts_t o = {.url = NULL};
    cr_assert_null(agent_http_start(s_http, &o, &s_cb, &x));
    llm_fake_script(&s_fake, "[{\"kind\":\"stalled\",\"stall_s\":20}]");
    int pending = 1;
    cr_assert_not_null(s_get(&x, "POST", "/chat/completions", 0));
    s_run(&pending, 300);
    cr_assert_not(x.done);
    cr_assert_eq(agent_http_active(s_http), 1);
    agent_http_destroy(&s_http);
    cr_assert_null(s_http);
    cr_assert_not(x.done, "destroy cancels without callbacks");
    agent_http_destroy(&s_http);
}
