#!/usr/bin/env python3
"""overload_rss.py: samples the resident set size of a cluster's processes
once a second until the stop file exists (tests/overload/run).

Processes: every <name>.pid of --run (gateway, n1, n2, registry...) and
every process of the Postgres cluster (the postmaster of --pg-pid-file and
its children: backends, checkpointer, walwriter...). Each sample is one line
of --out: "wall_ms name pid rss_kb" (name pg-backend for a client backend,
pg-<kind> for the others); a process that is gone is sampled as rss 0, once.
"""
import argparse
import os
import time


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return 0


def children(ppid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rfind(")") + 2:].split()[1]) == ppid:
            out.append(int(d))
    return out


def pg_kind(pid):
    """'backend' for a client backend, else the auxiliary process's kind."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    # "postgres: bicky app 127.0.0.1(1234) idle" vs "postgres: checkpointer"
    rest = cmd.split(":", 1)[1].strip() if ":" in cmd else cmd
    words = rest.split()
    if len(words) >= 3 and ("(" in words[2] or words[2] == "[local]"):
        return "backend"
    return words[0] if words else "other"


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.readline().strip())
    except (OSError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, help="directory of <name>.pid files")
    ap.add_argument("--pg-pid-file", required=True, help="postmaster.pid")
    ap.add_argument("--out", required=True)
    ap.add_argument("--stop-file", required=True)
    args = ap.parse_args()
    procs = {}
    for f in sorted(os.listdir(args.run)):
        if f.endswith(".pid") and f != "supervisor.pid":
            pid = read_pid(os.path.join(args.run, f))
            if pid:
                procs[pid] = f[:-4]
    pm = read_pid(args.pg_pid_file)
    gone = set()
    with open(args.out, "w") as out:
        while not os.path.exists(args.stop_file):
            now = int(time.time() * 1000)
            rows = list(procs.items())
            if pm:
                rows.append((pm, "pg-postmaster"))
                for c in children(pm):
                    kind = pg_kind(c)
                    if kind:
                        rows.append((c, "pg-" + kind))
            for pid, name in rows:
                kb = rss_kb(pid)
                if kb is None:
                    if pid in procs and pid not in gone:
                        gone.add(pid)
                        out.write(f"{now} {name} {pid} 0\n")
                    continue
                out.write(f"{now} {name} {pid} {kb}\n")
            out.flush()
            time.sleep(1.0)


if __name__ == "__main__":
    main()
