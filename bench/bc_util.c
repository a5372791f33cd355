/*  bc_util — the bench clients' plumbing: monotonic clock, loopback URL and
    source-address parsing (the bench never sends outside 127.0.0.0/8),
    non-blocking connects bound to a source address, RSS of a process, the
    open-file limit, and latency samples (percentiles, CDF files for gnuplot).
    Single-threaded. */
#include "bench/bc.h"

#include "common/util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

int64_t bc_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool s_loopback(struct in_addr a)
{
    return (ntohl(a.s_addr) >> 24) == 127;
}

int bc_parse_url(const char *url, struct sockaddr_in *dst)
{
    char host[64];
    unsigned port = 0;
    if (!url || sscanf(url, "http://%63[0-9.]:%u", host, &port) != 2 || port == 0 || port > 65535) {
        return -1;
    }
    memset(dst, 0, sizeof *dst);
    dst->sin_family = AF_INET;
    dst->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &dst->sin_addr) != 1 || !s_loopback(dst->sin_addr)) {
        return -1;
    }
    return 0;
}

int bc_parse_sources(const char *list, struct in_addr *out, int cap)
{
    int n = 0;
    const char *p = list;
    while (p && *p && n < cap) {
        char one[32];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof one) {
            return -1;
        }
        memcpy(one, p, len);
        one[len] = 0;
        if (inet_pton(AF_INET, one, &out[n]) != 1 || !s_loopback(out[n])) {
            return -1;
        }
        n++;
        p += len;
        p += *p == ',';
    }
    return n;
}

int bc_tcp_connect(const struct sockaddr_in *dst, const struct in_addr *src, bool nodelay)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    if (nodelay) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (src) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = *src};
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    if (connect(fd, (const struct sockaddr *)dst, sizeof *dst) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int bc_write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Parent pid from /proc/PID/stat (the field after the parenthesised name). */
static long s_ppid(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) {
        fclose(f);
    }
    buf[n] = 0;
    char *rp = strrchr(buf, ')');
    long ppid = -1;
    return rp && sscanf(rp + 1, " %*c %ld", &ppid) == 1 ? ppid : -1;
}

long bc_rss_tree_kb(long pid)
{
    long total = bc_rss_kb(pid);
    DIR *d = total >= 0 ? opendir("/proc") : NULL;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char *end;
        long child = strtol(e->d_name, &end, 10);
        if (*end == 0 && child > 0 && child != pid && s_ppid(child) == pid) {
            long kb = bc_rss_kb(child);
            total += kb > 0 ? kb : 0;
        }
    }
    if (d) {
        closedir(d);
    }
    return total;
}

long bc_rss_kb(long pid)
{
    char path[64], line[256];
    if (pid > 0) {
        snprintf(path, sizeof path, "/proc/%ld/status", pid);
    } else {
        snprintf(path, sizeof path, "/proc/self/status");
    }
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    if (f) {
        fclose(f);
    }
    return kb;
}

long bc_raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return -1;
    }
    if ((long)rl.rlim_cur < want) {
        rl.rlim_cur = (rlim_t)want > rl.rlim_max ? rl.rlim_max : (rlim_t)want;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}

/* ---- samples ----------------------------------------------------------------------------- */

int bc_samples_add(bc_samples_t *s, int64_t v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        int64_t *nv = realloc(s->v, cap * sizeof *nv);
        if (!nv) {
            return -1;
        }
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    s->sorted = false;
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void s_sort(bc_samples_t *s)
{
    if (!s->sorted && s->n > 0) {
        qsort(s->v, s->n, sizeof *s->v, s_cmp);
    }
    s->sorted = true;
}

int64_t bc_samples_pct(bc_samples_t *s, double p)
{
    if (s->n == 0) {
        return 0;
    }
    s_sort(s);
    size_t rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
    rank = rank < 1 ? 1 : rank > s->n ? s->n : rank;
    return s->v[rank - 1];
}

int bc_samples_write_cdf(bc_samples_t *s, const char *path, size_t points)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        return -1;
    }
    s_sort(s);
    size_t step = points > 0 && s->n > points ? s->n / points : 1;
    for (size_t i = step - 1; i < s->n; i += step) {
        fprintf(f, "%.4f %.6f\n", (double)s->v[i] / 1000.0, (double)(i + 1) / (double)s->n);
    }
    if (s->n > 0 && (s->n % step) != 0) {
        fprintf(f, "%.4f 1.000000\n", (double)s->v[s->n - 1] / 1000.0);
    }
    return fclose(f) == 0 ? 0 : -1;
}

void bc_samples_json(bc_samples_t *s, char *out, size_t cap)
{
    double sum = 0;
    for (size_t i = 0; i < s->n; i++) {
        sum += (double)s->v[i];
    }
    double mean = s->n ? sum / (double)s->n / 1000.0 : 0;
    snprintf(out, cap,
             "{\"n\":%zu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,"
             "\"mean\":%.3f}",
             s->n, (double)bc_samples_pct(s, 50) / 1000.0, (double)bc_samples_pct(s, 90) / 1000.0,
             (double)bc_samples_pct(s, 99) / 1000.0, (double)bc_samples_pct(s, 99.9) / 1000.0,
             (double)bc_samples_pct(s, 100) / 1000.0, mean);
}

void bc_samples_free(bc_samples_t *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

int bc_load_uuids(const char *path, char (**ids)[37], size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 0;
    char line[128];
    while (fgets(line, sizeof line, f)) {
        uint8_t id[16];
        line[strcspn(line, "\r\n")] = 0;
        if (util_uuid_parse(line, id) < 0) {
            continue;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            char(*more)[37] = realloc(*ids, cap * sizeof *more);
            if (!more) {
                fclose(f);
                return -1;
            }
            *ids = more;
        }
        util_uuid_format(id, (*ids)[(*n)++]);
    }
    fclose(f);
    return 0;
}
