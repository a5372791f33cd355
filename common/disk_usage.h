/*  disk_usage — how much disk a directory tree takes, for the sandbox's disk
    quota (sandbox_disk_mb, docs/tools.md): bicky-exec measures the trees it
    guards while its program runs, and the node's tools check before they write
    (on the agent_pool, never on a loop). Built into bicky-exec from this file
    alone (no other library). Blocking; any thread. */
#ifndef BICKY_DISK_USAGE_H
#define BICKY_DISK_USAGE_H

#define DISK_USAGE_MIN_ENTRY 4096 /* bytes every entry counts for at least (its inode) */
#define DISK_USAGE_MAX_DEPTH 64   /* a tree deeper than this counts as over any quota */
#define DISK_USAGE_EXIT      122  /* bicky-exec's exit status when the quota stopped it */

/* Bytes the tree under dir takes: the sum over dir and every entry below it of
   st_blocks * 512, each entry counted at least DISK_USAGE_MIN_ENTRY (so empty files,
   which cost an inode, count too). Never follows a symlink (every directory is opened
   with O_NOFOLLOW relative to its parent, so a swapped component cannot lead out),
   never leaves dir's filesystem. With stop_at > 0 it stops as soon as the sum passes
   stop_at (and returns that sum); a tree deeper than DISK_USAGE_MAX_DEPTH returns
   stop_at + 1 then (or the sum so far without stop_at). Entries that vanish while it
   walks are skipped. Returns the sum, or -1 (errno set) when dir cannot be opened. */
long long disk_usage(const char *dir, long long stop_at);

#endif
