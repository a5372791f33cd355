/*  llm_fake — test helpers around tests/fixtures/fake_llm.py: start it as a
    child process on a port the kernel picks (BICKY_FAKE_LLM_PORTS=A-B makes it
    take the first free port of that range instead), script it, read back what
    it received, stop it. The control calls use blocking curl: they run in the
    test process, never on a loop.
    Header-only: included by one test file each. */
#ifndef BICKY_TESTS_LLM_FAKE_H
#define BICKY_TESTS_LLM_FAKE_H

#include "common/cfg_file.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    pid_t pid; /* the python process */
    int port;  /* where it listens */
} llm_fake_t;

/* The fixture's path: $BICKY_SRC/tests/fixtures, else next to this file. */
static inline void llm_fake_path(char *out, size_t len)
{
    const char *src = getenv("BICKY_SRC");
    if (src && *src) {
        snprintf(out, len, "%s/tests/fixtures/fake_llm.py", src);
        return;
    }
    char here[4096];
    snprintf(here, sizeof here, "%s", __FILE__);
    snprintf(out, len, "%s/../fixtures/fake_llm.py", dirname(here));
}

static inline void llm_fake_start(llm_fake_t *f)
{
    char path[4096];
    llm_fake_path(path, sizeof path);
    cr_assert_eq(access(path, R_OK), 0, "fake_llm.py not found at %s", path);
    const char *ports = getenv("BICKY_FAKE_LLM_PORTS");
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    f->pid = fork();
    cr_assert_geq(f->pid, 0);
    if (f->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        /* fake_llm.py binds port 0 unless given a range, and prints the port. */
        execlp("python3", "python3", path, ports && *ports ? "--port-range" : "--port",
               ports && *ports ? ports : "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    char line[32] = "";
    size_t n = 0;
    while (n < sizeof line - 1 && !strchr(line, '\n') && poll(&p, 1, 10000) == 1) {
        ssize_t r = read(fds[0], line + n, sizeof line - 1 - n);
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
        line[n] = '\0';
    }
    close(fds[0]);
    f->port = atoi(line);
    cr_assert_gt(f->port, 0, "fake_llm did not print its port (got \"%s\")", line);
}

static inline void llm_fake_stop(llm_fake_t *f)
{
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        int status = 0;
        waitpid(f->pid, &status, 0);
        f->pid = 0;
    }
}

typedef struct {
    char *data;
    size_t len;
} llm_buf_t;

static inline size_t llm_buf_write(char *ptr, size_t size, size_t nmemb, void *userp)
{
    llm_buf_t *b = userp;
    size_t n = size * nmemb;
    char *grown = realloc(b->data, b->len + n + 1);
    if (!grown) {
        return 0;
    }
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* A blocking control call to the fake; returns the response body (caller frees). */
static inline char *
llm_fake_call(const llm_fake_t *f, const char *method, const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->port, path);
    llm_buf_t buf = {0};
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, llm_buf_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    cr_assert_eq(rc, CURLE_OK, "control call %s %s: %s", method, path, curl_easy_strerror(rc));
    cr_assert_eq(status, 200, "control call %s %s: HTTP %ld %s", method, path, status,
                 buf.data ? buf.data : "");
    return buf.data ? buf.data : strdup("");
}

static inline void llm_fake_script(const llm_fake_t *f, const char *script_json)
{
    free(llm_fake_call(f, "POST", "/_script", script_json));
}

/* The bodies the fake received, as a JSON array of {path, headers, body}. */
static inline json_t *llm_fake_requests(const llm_fake_t *f)
{
    char *text = llm_fake_call(f, "GET", "/_requests", NULL);
    json_error_t err;
    json_t *list = json_loads(text, 0, &err);
    cr_assert(json_is_array(list), "bad /_requests: %s", err.text);
    free(text);
    return list;
}

/* A config with one strategy "s" of kind pointing at the fake; extra is
   appended to the section (e.g. "timeout_s = 2\n"). Caller destroys. */
static inline cfg_file_t *
llm_fake_config(const llm_fake_t *f, cfg_strategy_kind_t kind, const char *extra)
{
    char text[2048], err[256];
    bool openai = kind == CFG_STRATEGY_OPENAI;
    snprintf(text, sizeof text,
             "[strategy.s]\nkind = %s\nbase_url = http://127.0.0.1:%d%s\nmodel = fake-model\n"
             "api_key_env = BICKY_TEST_LLM_KEY\n%s",
             cfg_strategy_kind_name(kind), f->port, openai ? "/v1" : "", extra ? extra : "");
    cfg_file_t *cfg = cfg_file_load_string(text, "test.ini", err, sizeof err);
    cr_assert_not_null(cfg, "%s", err);
    return cfg;
}

#endif
