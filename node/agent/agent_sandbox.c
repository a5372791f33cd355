/*  agent_sandbox — bwrap argv for the tool processes and the claude CLI, and the
    node-wide choice of whether to use it. What is visible and why is in
    docs/tools.md ("Sandbox"). Pure except agent_sandbox_init (startup). */
#define LOG_MODULE "agent_sandbox"
#include "node/agent/agent_sandbox.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The top-level toolchain directories: a symlink on the host (merged /usr) is
   mirrored as the same symlink, a directory is bound read-only. */
static const char *const s_top[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", NULL};

/* The part of /etc that bash, git, coreutils, node and TLS clients read. No
   shadow, no ssh keys, no machine secrets, no Bicky config. */
static const char *const s_etc[] = {
    "/etc/alternatives",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/gitconfig",
    "/etc/bash.bashrc",
    "/etc/profile",
    "/etc/inputrc",
    "/etc/os-release",
    "/etc/mime.types",
    "/etc/protocols",
    "/etc/services",
    "/etc/debian_version",
    NULL,
};

typedef struct {
    char **v;   /* NULL-terminated */
    size_t n;   /* entries */
    size_t cap; /* room, the NULL not counted */
    bool oom;   /* an allocation failed */
} s_vec_t;

static void s_add(s_vec_t *s, const char *item)
{
    char *copy = s->oom ? NULL : strdup(item);
    if (copy && s->n + 1 >= s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(copy);
            copy = NULL;
        } else {
            s->v = v;
            s->cap = cap;
        }
    }
    if (!copy) {
        s->oom = true;
        return;
    }
    s->v[s->n++] = copy;
    s->v[s->n] = NULL;
}

static void s_add3(s_vec_t *s, const char *a, const char *b, const char *c)
{
    s_add(s, a);
    s_add(s, b);
    if (c) {
        s_add(s, c);
    }
}

static void s_toolchain(s_vec_t *s)
{
    s_add3(s, "--ro-bind", "/usr", "/usr");
    for (size_t i = 0; s_top[i]; i++) {
        struct stat st;
        char target[PATH_MAX];
        if (lstat(s_top[i], &st) != 0) {
            continue;
        }
        ssize_t n = S_ISLNK(st.st_mode) ? readlink(s_top[i], target, sizeof target - 1) : -1;
        if (n > 0) {
            target[n] = '\0';
            s_add3(s, "--symlink", target, s_top[i]);
        } else if (S_ISDIR(st.st_mode)) {
            s_add3(s, "--ro-bind", s_top[i], s_top[i]);
        }
    }
    for (size_t i = 0; s_etc[i]; i++) {
        s_add3(s, "--ro-bind-try", s_etc[i], s_etc[i]);
    }
}

static bool s_paths_ok(const agent_sandbox_spec_t *spec)
{
    if (!spec->bwrap || spec->bwrap[0] != '/' || !spec->rw[0]) {
        return false;
    }
    for (size_t i = 0; i < AGENT_SANDBOX_MAX_PATHS; i++) {
        if ((spec->rw[i] && spec->rw[i][0] != '/') || (spec->ro[i] && spec->ro[i][0] != '/')) {
            return false;
        }
    }
    return !spec->chdir || spec->chdir[0] == '/';
}

char **agent_sandbox_argv(const agent_sandbox_spec_t *spec, char *const *argv)
{
    if (!spec || !argv || !argv[0] || !s_paths_ok(spec)) {
        return NULL;
    }
    s_vec_t s = {0};
    s_add(&s, spec->bwrap);
    /* Namespaces: the node's processes, IPC objects, hostname and (unless asked)
       network are out of sight; the sandbox's PID 1 dies with bwrap, which dies with
       bicky-exec, and everything in the namespace dies with PID 1. */
    s_add3(&s, "--unshare-pid", "--unshare-ipc", "--unshare-uts");
    s_add(&s, "--unshare-cgroup-try");
    if (!spec->network) {
        s_add(&s, "--unshare-net");
    }
    s_add3(&s, "--die-with-parent", "--new-session", NULL);
    /* A root node's sandbox must not keep root's capabilities (mount, ptrace,
       open_by_handle_at would undo everything below). */
    s_add3(&s, "--cap-drop", "ALL", NULL);
    s_add3(&s, "--hostname", "sandbox", NULL);
    s_toolchain(&s);
    s_add3(&s, "--proc", "/proc", NULL);
    /* Every writable tmpfs is sized: its pages are RAM that no rlimit counts. /dev
       itself is read-only once made (its device nodes still work), /dev/shm its own. */
    char size[32];
    snprintf(size, sizeof size, "%lld", (long long)spec->tmp_mb << 20);
    s_add3(&s, "--dev", "/dev", NULL);
    static const char *const s_tmpfs[] = {"/dev/shm", "/tmp", "/var/tmp"};
    for (size_t i = 0; i < sizeof s_tmpfs / sizeof s_tmpfs[0]; i++) {
        if (spec->tmp_mb > 0) {
            s_add3(&s, "--size", size, NULL);
        }
        s_add3(&s, "--tmpfs", s_tmpfs[i], NULL);
        if (i == 0) {
            s_add3(&s, "--remount-ro", "/dev", NULL);
        }
    }
    for (size_t i = 0; i < AGENT_SANDBOX_MAX_PATHS && spec->ro[i]; i++) {
        s_add3(&s, "--ro-bind", spec->ro[i], spec->ro[i]);
    }
    /* Last, so that a worktree under /tmp is bound over the private /tmp. */
    for (size_t i = 0; i < AGENT_SANDBOX_MAX_PATHS && spec->rw[i]; i++) {
        s_add3(&s, "--bind", spec->rw[i], spec->rw[i]);
    }
    s_add3(&s, "--chdir", spec->chdir ? spec->chdir : spec->rw[0], NULL);
    s_add(&s, "--");
    for (size_t i = 0; argv[i]; i++) {
        s_add(&s, argv[i]);
    }
    if (s.oom) {
        agent_sandbox_argv_free(&s.v);
        return NULL;
    }
    return s.v;
}

void agent_sandbox_argv_free(char ***argv_p)
{
    if (!argv_p || !*argv_p) {
        return;
    }
    for (char **p = *argv_p; *p; p++) {
        free(*p);
    }
    free(*argv_p);
    *argv_p = NULL;
}

void agent_sandbox_limits_default(agent_sandbox_limits_t *out)
{
    *out = (agent_sandbox_limits_t){.cpu_s = 600,
                                    .memory_mb = 8192,
                                    .processes = 256,
                                    .file_mb = 1024,
                                    .open_files = 1024,
                                    .tmp_mb = 512,
                                    .disk_mb = 4096};
}

char *agent_sandbox_limits_format(const agent_sandbox_limits_t *l, char *buf, size_t len)
{
    const struct {
        const char *name;
        long long v;
    } f[] = {{"cpu", l->cpu_s},         {"as", (long long)l->memory_mb << 20},
             {"nproc", l->processes},   {"fsize", (long long)l->file_mb << 20},
             {"nofile", l->open_files}, {"disk", (long long)l->disk_mb << 20}};
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof f / sizeof f[0] && at < len; i++) {
        if (f[i].v > 0) {
            int n = snprintf(buf + at, len - at, "%s%s=%lld", at ? "," : "", f[i].name, f[i].v);
            at += n > 0 ? (size_t)n : 0;
        }
    }
    return buf;
}

int agent_sandbox_install_dir(const char *prog, char out[PATH_MAX])
{
    char real[PATH_MAX];
    if (!prog || !realpath(prog, real)) {
        return -1;
    }
    char *nm = strstr(real, "/node_modules/"); /* the outermost one */
    char *cut = nm ? nm + strlen("/node_modules") : strrchr(real, '/');
    if (!cut || cut == real) {
        return -1; /* a program in / itself */
    }
    *cut = '\0';
    snprintf(out, PATH_MAX, "%s", real);
    return 0;
}

static bool s_find(const char *want, char out[PATH_MAX])
{
    if (want && *want) {
        return realpath(want, out) && access(out, X_OK) == 0;
    }
    const char *dirs[] = {"/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (access(dirs[i], X_OK) == 0 && realpath(dirs[i], out)) {
            return true;
        }
    }
    return false;
}

int agent_sandbox_init(agent_sandbox_t *sb, agent_sandbox_mode_t mode, const char *bwrap)
{
    memset(sb, 0, sizeof *sb);
    bool found = s_find(bwrap, sb->bwrap);
    if (!found) {
        sb->bwrap[0] = '\0';
    }
    if (mode == AGENT_SANDBOX_OFF) {
        LOG_W("SANDBOX OFF (--sandbox off): tools and the claude CLI run with the node's "
              "rights and see the whole host");
        return 0;
    }
    sb->enabled = found || mode == AGENT_SANDBOX_ON;
    if (found) {
        LOG_N("sandbox on bwrap=%s", sb->bwrap);
    } else if (mode == AGENT_SANDBOX_ON) {
        LOG_E("sandbox required (--sandbox on) but bwrap is missing: every tool call and "
              "claude-code turn will fail (install bubblewrap)");
    } else {
        LOG_W("SANDBOX OFF: bwrap not found (install bubblewrap); tools and the claude CLI run "
              "with the node's rights and see the whole host");
    }
    return 0;
}
