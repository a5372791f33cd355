#!/usr/bin/env python3
"""chaos_faults.py — the fault injector of tests/chaos/run (python3 standard library).

For --duration seconds, every uniform(--min-gap, --max-gap) seconds (from the
start of the previous fault), picks one of --names at random and either kills
it (SIGKILL) or pauses it (SIGSTOP, then SIGCONT after uniform(--stop-min,
--stop-max) seconds), both kinds equally likely, all from random.Random(--seed).
The process is found through RUN/<name>.pid (deploy/local/up's supervisor
writes it; it restarts a killed process under a new pid); a name without a
live bicky process (a restart still pending) is skipped for another. Every
fault is one line of --log:
    {"t": time of the signal, "kind": "kill"|"stop", "target": name, "pid": pid,
     "t_end": time of the SIGCONT (stop), "stop_s": planned pause (stop)}
A paused process always gets its SIGCONT, also when the injector is stopped
(SIGTERM or --stop-file) in the middle of a pause.
"""
import argparse
import json
import os
import random
import signal
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="the cluster's run/ directory (pid files)")
    p.add_argument("--names", required=True, help="comma list of process names")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--min-gap", type=float, default=5.0)
    p.add_argument("--max-gap", type=float, default=15.0)
    p.add_argument("--stop-min", type=float, default=1.5)
    p.add_argument("--stop-max", type=float, default=4.0)
    p.add_argument("--log", required=True)
    p.add_argument("--stop-file")
    return p.parse_args()


class Injector:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.names = args.names.split(",")
        self.stopping = False
        self.log = open(args.log, "w", buffering=1)

    def done(self):
        return self.stopping or (self.args.stop_file and os.path.exists(self.args.stop_file))

    def sleep_until(self, t):
        while not self.done() and time.time() < t:
            time.sleep(min(0.05, max(0.0, t - time.time())))

    def pid_of(self, name):
        try:
            with open(os.path.join(self.args.run, name + ".pid")) as f:
                pid = int(f.read().strip())
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read()
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        return pid if b"bicky-" in cmd and state not in ("Z", "X") else None

    def one(self):
        kind = self.rng.choice(["kill", "stop"])
        stop_s = round(self.rng.uniform(self.args.stop_min, self.args.stop_max), 2)
        order = self.names[:]
        self.rng.shuffle(order)
        for name in order:
            pid = self.pid_of(name)
            if pid is not None:
                break
        else:
            self.write({"t": round(time.time(), 4), "kind": "none", "target": None})
            return
        rec = {"kind": kind, "target": name, "pid": pid}
        if kind == "kill":
            rec["t"] = round(time.time(), 4)
            os.kill(pid, signal.SIGKILL)
        else:
            rec["t"], rec["stop_s"] = round(time.time(), 4), stop_s
            os.kill(pid, signal.SIGSTOP)
            try:
                self.sleep_until(rec["t"] + stop_s)
            finally:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
                rec["t_end"] = round(time.time(), 4)
        self.write(rec)

    def write(self, rec):
        self.log.write(json.dumps(rec, separators=(",", ":")) + "\n")

    def run(self):
        start = time.time()
        t = start + self.rng.uniform(self.args.min_gap, self.args.max_gap)
        while True:
            self.sleep_until(t)
            if self.done() or t >= start + self.args.duration:
                break
            self.one()
            t += self.rng.uniform(self.args.min_gap, self.args.max_gap)
        self.log.close()


def main():
    inj = Injector(parse_args())

    def on_term(signum, frame):
        inj.stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    inj.run()


if __name__ == "__main__":
    main()
