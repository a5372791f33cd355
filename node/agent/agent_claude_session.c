/*  agent_claude_session — where the CLI keeps a session and how to move it:
    <HOME>/.claude/projects/<slug of cwd>/<session>.jsonl plus the session's
    side directory <session>/ (tool results, subagents). Export packs those
    files into one bundle for Postgres; import unpacks a bundle under another
    HOME and cwd so `--resume` works on a new owner node. Blocking file I/O:
    worker threads only (agent_pool). Pure otherwise; any thread. */
#define LOG_MODULE "agent_claude"
#include "common/log.h"
#include "node/agent/agent_claude.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_SLUG_MAX       200 /* the CLI cuts the slug here and appends a hash */
#define S_MAGIC          "BICKY-CLAUDE-SESSION 1\n"
#define S_MAX_FILES      10000
#define S_MAX_DEPTH      8
#define S_MAX_REL        1024
#define S_SESSION_ID_MAX 64

bool agent_claude_session_id_valid(const char *id)
{
    size_t len = id ? strlen(id) : 0;
    if (len == 0 || len > S_SESSION_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-')) {
            return false;
        }
    }
    return true;
}

/* Decodes one UTF-8 sequence; an invalid byte reads as U+FFFD (one byte). */
static size_t s_utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    size_t n = s[0] < 0x80         ? 1
               : (s[0] >> 5) == 6  ? 2
               : (s[0] >> 4) == 14 ? 3
               : (s[0] >> 3) == 30 ? 4
                                   : 0;
    if (n == 0 || n > len) {
        *cp = 0xFFFD;
        return 1;
    }
    uint32_t v = n == 1 ? s[0] : s[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return n;
}

/* The CLI's project slug (JavaScript, over UTF-16 code units):
   s = path.replace(/[^a-zA-Z0-9]/g, "-"); if s.length > 200:
   s.slice(0, 200) + "-" + Math.abs(javaHash(path)).toString(36). */
static int s_slug(const char *path, char *out, size_t outlen)
{
    const unsigned char *p = (const unsigned char *)path;
    size_t len = strlen(path), o = 0, units = 0;
    uint32_t hash = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += s_utf8_next(p + i, len - i, &cp);
        uint32_t u[2] = {cp, 0};
        int nu = 1;
        if (cp >= 0x10000) {
            u[0] = 0xD800 + ((cp - 0x10000) >> 10);
            u[1] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
            nu = 2;
        }
        for (int k = 0; k < nu; k++) {
            hash = hash * 31u + u[k];
            bool alnum =
                u[k] < 0x80 && ((u[k] >= '0' && u[k] <= '9') || (u[k] >= 'a' && u[k] <= 'z') ||
                                (u[k] >= 'A' && u[k] <= 'Z'));
            if (units++ < S_SLUG_MAX && o + 1 < outlen) {
                out[o++] = alnum ? (char)u[k] : '-';
            }
        }
    }
    if (units > S_SLUG_MAX) {
        int64_t h = (int32_t)hash;
        uint64_t a = (uint64_t)(h < 0 ? -h : h);
        char digits[16];
        int nd = 0;
        do {
            digits[nd++] = "0123456789abcdefghijklmnopqrstuvwxyz"[a % 36];
            a /= 36;
        } while (a);
        if (o + 1 + (size_t)nd + 1 > outlen) {
            return -1;
        }
        out[o++] = '-';
        while (nd) {
            out[o++] = digits[--nd];
        }
    }
    if (o + 1 > outlen || (units <= S_SLUG_MAX && o < units)) {
        return -1;
    }
    out[o] = '\0';
    return 0;
}

int agent_claude_project_dir(const char *home, const char *cwd, char *out, size_t outlen)
{
    char real[PATH_MAX], slug[S_SLUG_MAX + 32];
    const char *path = realpath(cwd, real) ? real : cwd;
    if (s_slug(path, slug, sizeof slug) < 0) {
        return -1;
    }
    int n = snprintf(out, outlen, "%s/.claude/projects/%s", home, slug);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int agent_claude_session_path(
    const char *home, const char *cwd, const char *session_id, char *out, size_t outlen)
{
    char dir[PATH_MAX];
    if (!agent_claude_session_id_valid(session_id) ||
        agent_claude_project_dir(home, cwd, dir, sizeof dir) < 0) {
        return -1;
    }
    int n = snprintf(out, outlen, "%s/%s.jsonl", dir, session_id);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* --- export ------------------------------------------------------------ */

typedef struct {
    char *data;    /* the bundle */
    size_t len;    /* bytes used */
    size_t cap;    /* bytes allocated */
    size_t max;    /* bound */
    size_t files;  /* files added */
    char *err;     /* reason on failure */
    size_t errlen; /* its size */
} s_bundle_t;

static int s_append(s_bundle_t *b, const void *data, size_t len)
{
    if (b->len + len > b->max) {
        snprintf(b->err, b->errlen, "session larger than %zu bytes", b->max);
        return -1;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + len) {
            cap *= 2;
        }
        char *grown = realloc(b->data, cap);
        if (!grown) {
            snprintf(b->err, b->errlen, "out of memory");
            return -1;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

/* Reads want bytes of fd into the bundle. */
static int s_read_into(s_bundle_t *b, int fd, size_t want, const char *rel)
{
    char buf[65536];
    size_t done = 0;
    while (done < want) {
        size_t chunk = want - done < sizeof buf ? want - done : sizeof buf;
        ssize_t n = read(fd, buf, chunk);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            snprintf(b->err, b->errlen, "%s changed while being read", rel);
            return -1;
        }
        if (s_append(b, buf, (size_t)n) < 0) {
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

/* The file entry at `at` (header of hn bytes, then its bytes up to b->len) keeps its
   bytes up to the last newline only; the header is rewritten with that size. */
static int s_whole_lines(s_bundle_t *b, size_t at, size_t hn, const char *rel)
{
    size_t start = at + hn, keep = b->len - start;
    while (keep > 0 && b->data[start + keep - 1] != '\n') {
        keep--;
    }
    if (keep == b->len - start) {
        return 0;
    }
    char head[S_MAX_REL + 64];
    int nn = snprintf(head, sizeof head, "file %zu %s\n", keep, rel);
    /* The new header is never longer: the size has at most as many digits. */
    memmove(b->data + at + (size_t)nn, b->data + start, keep);
    memcpy(b->data + at, head, (size_t)nn);
    b->len = at + (size_t)nn + keep;
    return 0;
}

/* Appends "file <size> <rel>\n<bytes>\n". whole_lines (the transcript, which the CLI may
   be appending to while a running turn is exported): only up to its last newline, so a
   line being written is left out rather than cut. */
static int s_add_file(s_bundle_t *b, const char *path, const char *rel, bool whole_lines)
{
    if (++b->files > S_MAX_FILES) {
        snprintf(b->err, b->errlen, "more than %d files in the session", S_MAX_FILES);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(b->err, b->errlen, "cannot read %s: %s", rel,
                 fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    char head[S_MAX_REL + 64];
    int hn = snprintf(head, sizeof head, "file %lld %s\n", (long long)st.st_size, rel);
    size_t want = (size_t)st.st_size;
    size_t at = b->len;
    int rc = s_append(b, head, (size_t)hn);
    if (rc == 0 && b->len + want + 1 > b->max) {
        snprintf(b->err, b->errlen, "session larger than %zu bytes", b->max);
        rc = -1;
    }
    if (rc == 0) {
        rc = s_read_into(b, fd, want, rel);
    }
    close(fd);
    if (rc == 0 && whole_lines) {
        rc = s_whole_lines(b, at, (size_t)hn, rel);
    }
    return rc == 0 ? s_append(b, "\n", 1) : -1;
}

/* Adds every regular file below dir (symlinks and other types skipped). */
static int s_add_dir(s_bundle_t *b, const char *dir, const char *rel, int depth)
{
    if (depth > S_MAX_DEPTH) {
        snprintf(b->err, b->errlen, "session directory nested deeper than %d", S_MAX_DEPTH);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(b->err, b->errlen, "cannot list %s: %s", rel, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        char path[PATH_MAX], sub[S_MAX_REL + 1];
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strpbrk(e->d_name, "\n\r")) {
            continue;
        }
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            snprintf(sub, sizeof sub, "%s/%s", rel, e->d_name) >= (int)sizeof sub ||
            lstat(path, &st) < 0) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = s_add_dir(b, path, sub, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            rc = s_add_file(b, path, sub, false);
        }
    }
    closedir(d);
    return rc;
}

int agent_claude_session_export(const char *home,
                                const char *cwd,
                                const char *session_id,
                                size_t max_bytes,
                                char **data,
                                size_t *len,
                                char *err,
                                size_t errlen)
{
    char dir[PATH_MAX], path[PATH_MAX], rel[S_MAX_REL];
    s_bundle_t b = {
        .max = max_bytes ? max_bytes : AGENT_CLAUDE_SESSION_MAX, .err = err, .errlen = errlen};
    err[0] = '\0';
    if (agent_claude_session_path(home, cwd, session_id, path, sizeof path) < 0 ||
        agent_claude_project_dir(home, cwd, dir, sizeof dir) < 0) {
        snprintf(err, errlen, "bad session id or path too long");
        return -1;
    }
    if (access(path, F_OK) < 0) {
        snprintf(err, errlen, "no transcript for session %s", session_id);
        return -1;
    }
    snprintf(rel, sizeof rel, "%s.jsonl", session_id);
    int rc = s_append(&b, S_MAGIC, strlen(S_MAGIC));
    if (rc == 0) {
        rc = s_add_file(&b, path, rel, true);
    }
    if (rc == 0 && snprintf(path, sizeof path, "%s/%s", dir, session_id) < (int)sizeof path) {
        rc = s_add_dir(&b, path, session_id, 1);
    }
    if (rc == 0) {
        rc = s_append(&b, "end\n", 4);
    }
    if (rc < 0) {
        free(b.data);
        return -1;
    }
    *data = b.data;
    *len = b.len;
    return 0;
}

/* --- import ------------------------------------------------------------ */

/* A bundle path must be "<id>.jsonl" or "<id>/a/b…" with plain components. */
static bool s_rel_ok(const char *rel, const char *id)
{
    size_t idlen = strlen(id), len = strlen(rel);
    if (len == idlen + 6 && strncmp(rel, id, idlen) == 0 && strcmp(rel + idlen, ".jsonl") == 0) {
        return true;
    }
    if (len > S_MAX_REL || strncmp(rel, id, idlen) != 0 || rel[idlen] != '/') {
        return false;
    }
    for (const char *c = rel + idlen + 1; *c;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) {
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)c[i] < 0x20) {
                return false;
            }
        }
        c += n + (slash ? 1 : 0);
        if (slash && !*c) {
            return false;
        }
    }
    return true;
}

static int s_mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            int rc = mkdir(path, 0700);
            *p = '/';
            if (rc < 0 && errno != EEXIST) {
                return -1;
            }
        }
    }
    return mkdir(path, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

/* Writes rel under the directory fd root, creating its parent directories
   without following symlinks, through a temporary name and a rename. */
static int s_write_rel(int root, const char *rel, const char *data, size_t len)
{
    char buf[S_MAX_REL + 1], tmp[S_MAX_REL + 32];
    snprintf(buf, sizeof buf, "%s", rel);
    int dir = dup(root), rc = -1;
    char *name = buf;
    for (char *slash; dir >= 0 && (slash = strchr(name, '/')); name = slash + 1) {
        *slash = '\0';
        if (mkdirat(dir, name, 0700) < 0 && errno != EEXIST) {
            close(dir);
            return -1;
        }
        int next = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(dir);
        dir = next;
    }
    if (dir < 0) {
        return -1;
    }
    snprintf(tmp, sizeof tmp, ".%s.bicky-%d", name, (int)getpid());
    int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    size_t off = 0;
    while (fd >= 0 && off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno != EINTR) {
            break;
        }
        off += n > 0 ? (size_t)n : 0;
    }
    if (fd >= 0 && close(fd) == 0 && off == len && renameat(dir, tmp, dir, name) == 0) {
        rc = 0;
    } else if (fd >= 0) {
        unlinkat(dir, tmp, 0);
    }
    close(dir);
    return rc;
}

/* Parses "file <size> <rel>\n" at *pos; returns 0 with the entry, 1 at
   "end\n", -1 when malformed. */
static int s_next_entry(const char *data, size_t len, size_t *pos, char *rel, size_t *size)
{
    const char *p = data + *pos;
    const char *nl = memchr(p, '\n', len - *pos);
    if (!nl) {
        return -1;
    }
    if (nl - p == 3 && memcmp(p, "end", 3) == 0) {
        *pos = (size_t)(nl - data) + 1;
        return *pos == len ? 1 : -1;
    }
    char line[S_MAX_REL + 64];
    size_t n = (size_t)(nl - p);
    if (n >= sizeof line || n < 7 || memcmp(p, "file ", 5) != 0) {
        return -1;
    }
    memcpy(line, p, n);
    line[n] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long long sz = strtoull(line + 5, &end, 10);
    if (errno || end == line + 5 || *end != ' ' || !end[1] || sz > len) {
        return -1;
    }
    snprintf(rel, S_MAX_REL + 1, "%s", end + 1);
    *size = (size_t)sz;
    *pos = (size_t)(nl - data) + 1;
    return 0;
}

/* Walks the bundle's entries; writes them only when root >= 0, so a first
   pass with root -1 validates the whole bundle before anything is written. */
static int
s_import_entries(int root, const char *id, const char *data, size_t len, char *err, size_t errlen)
{
    size_t pos = strlen(S_MAGIC), files = 0;
    bool transcript = false;
    for (;;) {
        char rel[S_MAX_REL + 1];
        size_t size = 0;
        int rc = s_next_entry(data, len, &pos, rel, &size);
        if (rc == 1) {
            break;
        }
        if (rc < 0 || size > len - pos || len - pos - size < 1 || data[pos + size] != '\n' ||
            ++files > S_MAX_FILES) {
            snprintf(err, errlen, "malformed session bundle at byte %zu", pos);
            return -1;
        }
        if (!s_rel_ok(rel, id)) {
            snprintf(err, errlen, "session bundle path not allowed: %.200s", rel);
            return -1;
        }
        if (root >= 0 && s_write_rel(root, rel, data + pos, size) < 0) {
            snprintf(err, errlen, "cannot write %.200s: %s", rel, strerror(errno));
            return -1;
        }
        transcript = transcript || strchr(rel, '/') == NULL;
        pos += size + 1;
    }
    if (!transcript) {
        snprintf(err, errlen, "session bundle has no transcript");
        return -1;
    }
    return 0;
}

int agent_claude_session_import(const char *home,
                                const char *cwd,
                                const char *session_id,
                                const char *data,
                                size_t len,
                                char *err,
                                size_t errlen)
{
    char dir[PATH_MAX];
    if (!agent_claude_session_id_valid(session_id) ||
        agent_claude_project_dir(home, cwd, dir, sizeof dir) < 0) {
        snprintf(err, errlen, "bad session id or path too long");
        return -1;
    }
    if (!data || len < strlen(S_MAGIC) || memcmp(data, S_MAGIC, strlen(S_MAGIC)) != 0) {
        snprintf(err, errlen, "not a claude session bundle");
        return -1;
    }
    if (s_import_entries(-1, session_id, data, len, err, errlen) < 0) {
        return -1;
    }
    if (s_mkdirs(dir) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    int root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) {
        snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = s_import_entries(root, session_id, data, len, err, errlen);
    close(root);
    return rc;
}
