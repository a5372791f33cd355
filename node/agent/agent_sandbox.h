/*  agent_sandbox — the bubblewrap sandbox of every tool process and of the claude
    CLI: wraps a program's argv into `bwrap … -- argv` (arrays only, never a shell
    string) with its own mount, PID, IPC and UTS namespaces, no network unless asked,
    the toolchain read-only, a fresh /proc, /dev and /tmp, and only the given paths
    writable. The resource limits are applied by bicky-exec (--limits) before it runs
    bwrap. See docs/tools.md ("Sandbox"). agent_sandbox_init blocks briefly (startup);
    everything else is pure and may be called from any thread. */
#ifndef BICKY_AGENT_SANDBOX_H
#define BICKY_AGENT_SANDBOX_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define AGENT_SANDBOX_MAX_PATHS 8   /* rw / ro paths of one sandbox */
#define AGENT_SANDBOX_LIMITS    128 /* bytes of a formatted --limits value */

typedef enum {
    AGENT_SANDBOX_AUTO = 0, /* on when bwrap is found at start, else off (logged) */
    AGENT_SANDBOX_ON,       /* required: without bwrap a tool call fails */
    AGENT_SANDBOX_OFF,      /* opt-out (logged as a warning) */
} agent_sandbox_mode_t;

/* Resource limits of one sandbox (per strategy). */
typedef struct {
    long cpu_s;      /* RLIMIT_CPU, seconds of CPU per process */
    long memory_mb;  /* RLIMIT_AS, MiB of address space per process */
    long processes;  /* RLIMIT_NPROC, and bicky-exec's cap on the sandbox's processes */
    long file_mb;    /* RLIMIT_FSIZE, MiB: the largest file a process may write */
    long open_files; /* RLIMIT_NOFILE */
    long tmp_mb;     /* size of each private tmpfs (/tmp, /var/tmp, /dev/shm), MiB; 0 = the
                        kernel's default (half the RAM: not for production) */
    long disk_mb;    /* what the writable directories (worktree, the CLI's HOME) may take on
                        disk together, MiB; bicky-exec measures and enforces it; 0 = no bound */
} agent_sandbox_limits_t;

/* Node-wide state, filled once at start. */
typedef struct {
    char bwrap[PATH_MAX]; /* absolute path of bwrap; "" when not found */
    bool enabled;         /* processes run in a sandbox (required: no bwrap = failure) */
} agent_sandbox_t;

/* One sandboxed process. Strings are borrowed for the call. */
typedef struct {
    const char *bwrap;                       /* the bwrap binary (absolute) */
    const char *rw[AGENT_SANDBOX_MAX_PATHS]; /* writable paths, bound at their own path */
    const char *ro[AGENT_SANDBOX_MAX_PATHS]; /* extra read-only paths (a CLI's install) */
    const char *chdir;                       /* working directory inside; NULL = rw[0] */
    bool network;                            /* keep the node's network namespace */
    long tmp_mb; /* size of each private tmpfs (MiB; 0 = the kernel's default) */
} agent_sandbox_spec_t;

/* Fills sb for mode: bwrap is the binary to use (NULL or "" = found in /usr/bin,
   /bin, /usr/local/bin). Logs the outcome: a warning for off and for auto without
   bwrap, an error for on without bwrap (sb->enabled stays true: calls then fail).
   Returns 0. Startup only. */
int agent_sandbox_init(agent_sandbox_t *sb, agent_sandbox_mode_t mode, const char *bwrap);

/* The defaults (cpu 600 s, memory 8192 MiB, 256 processes, files 1024 MiB, 1024
   open files, tmpfs 512 MiB, disk 4096 MiB). */
void agent_sandbox_limits_default(agent_sandbox_limits_t *out);

/* Writes "cpu=N,as=N,nproc=N,fsize=N,nofile=N,disk=N" (bicky-exec --limits; sizes in
   bytes; fields at 0 are left out, all 0 gives ""; disk needs --disk-dir) into buf
   (AGENT_SANDBOX_LIMITS bytes are enough). Returns buf. */
char *agent_sandbox_limits_format(const agent_sandbox_limits_t *l, char *buf, size_t len);

/* A new NULL-terminated argv: bwrap, its options for spec, "--", then argv (copied).
   Every string is owned by the array: free it with agent_sandbox_argv_free. Paths
   of spec must be absolute (a relative one, or none in rw, gives NULL). NULL on
   OOM or bad spec. Reads the host's /bin, /lib… to mirror their symlinks. */
char **agent_sandbox_argv(const agent_sandbox_spec_t *spec, char *const *argv);

/* The directory a CLI's install lives in, to bind read-only: the outermost
   node_modules above realpath(prog) (an npm install: the package and its
   platform binaries), else the directory of realpath(prog). 0, or -1 when prog
   cannot be resolved. */
int agent_sandbox_install_dir(const char *prog, char out[PATH_MAX]);

/* Frees an argv of agent_sandbox_argv; accepts NULL and nulls the pointer. */
void agent_sandbox_argv_free(char ***argv_p);

#endif
