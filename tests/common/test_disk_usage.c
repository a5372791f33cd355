/*  test_disk_usage — what the sandbox's disk quota measures (common/disk_usage.c):
    every entry counts at least one 4 KiB block (empty files too), real blocks are
    summed, a symlink to a big tree outside is not followed, the walk stops early
    once past stop_at, a tree deeper than DISK_USAGE_MAX_DEPTH counts as over, and
    a missing directory is -1. On a scratch directory of real files. */
#include "common/disk_usage.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[PATH_MAX];

static void setup(void)
{
    strcpy(g_dir, "/tmp/bicky-du-XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    nftw(g_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(disk_usage, .init = setup, .fini = teardown, .timeout = 30);

/* Creates g_dir/rel (directories along the way) with n bytes of data. */
static void s_file(const char *rel, size_t n)
{
    char path[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/%s", g_dir, rel);
    for (char *p = path + strlen(g_dir) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    char buf[8192];
    memset(buf, 'x', sizeof buf);
    while (n > 0) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        cr_assert_eq(write(fd, buf, k), (ssize_t)k);
        n -= k;
    }
    fsync(fd);
    close(fd);
}

Test(disk_usage, every_entry_counts_at_least_a_block)
{
    long long empty = disk_usage(g_dir, 0);
    cr_assert_eq(empty, DISK_USAGE_MIN_ENTRY, "an empty directory: %lld", empty);
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof name, "e%d", i);
        s_file(name, 0);
    }
    cr_assert_eq(disk_usage(g_dir, 0), 101LL * DISK_USAGE_MIN_ENTRY, "100 empty files");
}

Test(disk_usage, real_blocks_are_summed)
{
    s_file("a/b/big", 3 << 20);
    long long used = disk_usage(g_dir, 0);
    cr_assert_geq(used, 3LL << 20, "3 MiB of data: %lld", used);
    cr_assert_lt(used, 4LL << 20, "and not much more: %lld", used);
}

Test(disk_usage, symlinks_are_not_followed)
{
    char outside[PATH_MAX + 16], link[PATH_MAX + 16];
    s_file("out/big", 2 << 20);
    cr_assert_eq(mkdir(strcat(strcpy(outside, g_dir), "/in"), 0755), 0);
    snprintf(link, sizeof link, "%s/in/l", g_dir);
    cr_assert_eq(symlink("../out", link), 0);
    long long in = disk_usage(outside, 0);
    cr_assert_eq(in, 2LL * DISK_USAGE_MIN_ENTRY, "the directory and its link only: %lld", in);
    snprintf(link, sizeof link, "%s/in/root", g_dir);
    cr_assert_eq(symlink("/", link), 0);
    cr_assert_eq(disk_usage(outside, 0), 3LL * DISK_USAGE_MIN_ENTRY);
}

Test(disk_usage, stops_once_past_stop_at)
{
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "d%d/f", i);
        s_file(name, 0);
    }
    long long all = disk_usage(g_dir, 0);
    cr_assert_geq(all, 2001LL * DISK_USAGE_MIN_ENTRY, "%lld", all);
    long long part = disk_usage(g_dir, 10 * DISK_USAGE_MIN_ENTRY);
    cr_assert_gt(part, 10 * DISK_USAGE_MIN_ENTRY, "over the bound");
    cr_assert_leq(part, 12 * DISK_USAGE_MIN_ENTRY, "and it stopped there: %lld", part);
}

Test(disk_usage, a_too_deep_tree_is_over)
{
    char rel[4096] = "";
    for (int i = 0; i <= DISK_USAGE_MAX_DEPTH + 1; i++) {
        strcat(rel, "d/");
    }
    strcat(rel, "f");
    s_file(rel, 0);
    cr_assert_eq(disk_usage(g_dir, 1LL << 40), (1LL << 40) + 1, "over any quota");
    cr_assert_lt(disk_usage(g_dir, 0), 1LL << 20, "without a bound: what it saw");
}

Test(disk_usage, a_missing_directory_is_an_error)
{
    char missing[PATH_MAX + 16];
    snprintf(missing, sizeof missing, "%s/nope", g_dir);
    errno = 0;
    cr_assert_eq(disk_usage(missing, 0), -1);
    cr_assert_eq(errno, ENOENT);
}
