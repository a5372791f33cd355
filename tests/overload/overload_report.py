#!/usr/bin/env python3
"""overload_report.py: the figures and checks of tests/overload/run.

Reads the run directory: <phase>.json and <phase>.log of bench/openloop
(closed, baseline, overload: "phase due_ms status retry_after latency_us
content"), phases.txt ("name wall_ms"), rss.txt ("wall_ms name pid rss_kb").
Checks (exit 1 on any failure): every request of the overload (probes
included) was answered, with 202, 429 or 503 (not a transport error, not a
504); every 429 and 503 carried Retry-After; every
202 of every phase is a user message in Postgres; at a factor of 3 or more,
some answers were 429/503 (taking everything means queueing it). Reports: offered and sent
rates, status counts, accepted (202) latency p50/p99 of the baseline and of
the overload, max RSS per process and phase, the recovery time (from the end
of the overload's arrivals to the first of 5 probes in a row answered 202
within twice the baseline p99). Exit 2 when the run is not usable.
"""
import argparse
import json
import os
import subprocess
import sys

OK = {202, 429, 503}
RUN = 5  # probes in a row that make "recovered"


def pct(v, p):
    if not v:
        return None
    v = sorted(v)
    k = max(1, min(len(v), int(p / 100.0 * len(v) + 0.999999)))
    return v[k - 1]


def read_log(path):
    rows = []
    with open(path) as f:
        for line in f:
            ph, due, st, ra, lat, content = line.split()
            rows.append((ph, float(due), int(st), int(ra), int(lat), content))
    return rows


def read_json(path):
    with open(path) as f:
        return json.loads(f.read())


def ms(us):
    return None if us is None else round(us / 1000.0, 1)


def latency(rows):
    acc = [r[4] for r in rows if r[2] == 202]
    return {"n": len(acc), "p50_ms": ms(pct(acc, 50)), "p99_ms": ms(pct(acc, 99)),
            "max_ms": ms(max(acc) if acc else None)}


def statuses(rows):
    out = {}
    for r in rows:
        key = {0: "transport error", 1: "not sent"}.get(r[2], str(r[2]))
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def rss_by_phase(path, phases):
    """{process: {phase: max kB}}; Postgres backends folded into one row."""
    bounds = sorted(phases.items(), key=lambda kv: kv[1])
    names = {"closed": "before", "baseline": "before", "overload": "during",
             "after": "after", "end": None}

    def phase_of(t):
        cur = "before"
        for name, start in bounds:
            if t >= start:
                cur = names.get(name, cur)
        return cur

    out = {}
    with open(path) as f:
        for line in f:
            t, name, _pid, kb = line.split()
            ph = phase_of(int(t))
            if ph is None:
                continue
            row = out.setdefault(name, {})
            row[ph] = max(row.get(ph, 0), int(kb))
    return out


def recovery(rows, over_s, bound_us):
    """Seconds from the end of the arrivals to the first of RUN good probes."""
    end_ms = over_s * 1000.0
    probes = [r for r in rows if r[0] == "P"]
    streak = []
    for r in probes:
        if r[2] == 202 and r[4] <= bound_us:
            streak.append(r)
            if len(streak) == RUN:
                return round(max(0.0, streak[0][1] - end_ms) / 1000.0, 2), len(probes)
        else:
            streak = []
    return None, len(probes)


def lost(db_url, rows):
    """Contents answered 202 that are not a user message in Postgres."""
    acked = [r[5] for r in rows if r[2] == 202]
    if not acked:
        return []
    sql = ("create temp table acked (c text);\n\\copy acked from stdin\n" + "\n".join(acked) +
           "\n\\.\nselect a.c from acked a where not exists (select 1 from messages m "
           "where m.role = 'user' and m.content = a.c);\n")
    p = subprocess.run(["psql", db_url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"],
                       input=sql, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip())
    return [x for x in p.stdout.split("\n") if x]


def markdown(rep):
    o, b = rep["overload"], rep["baseline"]
    st = "; ".join(f"{k} {v}" for k, v in o["statuses"].items())
    lines = [
        f"| {rep['label']} | {rep['seconds']} s × {rep['factor']} | {rep['sustainable_rate']}/s "
        f"| {o['offered_rate']}/s ({o['sent_rate']}/s sent) | {st} | {o['without_retry_after']} "
        f"| {b['latency']['p50_ms']} / {b['latency']['p99_ms']} ms "
        f"| {o['latency']['p50_ms']} / {o['latency']['p99_ms']} ms (max {o['latency']['max_ms']}) "
        f"| {rep['recovery_s']} s | {rep['lost']} | {rep['load']} |",
        "",
        "| process | before | during | after |",
        "|---|---|---|---|",
    ]
    for name, row in rep["rss_max_kb"].items():
        cells = " | ".join(f"{row.get(p, 0) / 1024:.1f} MiB" for p in ("before", "during", "after"))
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--factor", required=True)
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--markdown")
    ap.add_argument("--label", default="-")
    ap.add_argument("--load", default="-")
    a = ap.parse_args()
    d = a.dir
    try:
        runs = {n: read_json(os.path.join(d, n + ".json")) for n in ("closed", "baseline",
                                                                        "overload")}
        logs = {n: read_log(os.path.join(d, n + ".log")) for n in runs}
        phases = {}
        with open(os.path.join(d, "phases.txt")) as f:
            for line in f:
                name, t = line.split()
                phases[name] = int(t)
    except (OSError, ValueError) as e:
        print(f"overload_report: not usable: {e}", file=sys.stderr)
        return 2
    over = logs["overload"]
    load_rows = [r for r in over if r[0] == "L"]
    base_lat = latency(logs["baseline"])
    bound_us = 2 * (base_lat["p99_ms"] or 0) * 1000.0
    rec, nprobes = recovery(over, a.seconds, bound_us)
    no_ra = sum(1 for r in over if r[2] in (429, 503) and r[3] < 0)
    # "not sent" is the generator's own bound (every connection it may open was
    # waiting for an answer): reported, not an answer of the cluster.
    bad = {k: v for k, v in statuses(over).items()
           if k != "not sent" and (not k.isdigit() or int(k) not in OK)}
    try:
        missing = [c for n in logs for c in lost(a.database_url, logs[n])]
    except RuntimeError as e:
        print(f"overload_report: not usable: {e}", file=sys.stderr)
        return 2
    ro = runs["overload"]
    rep = {
        "label": a.label, "load": a.load, "factor": float(a.factor), "seconds": a.seconds,
        "sustainable_rate": int(runs["closed"]["statuses"].get("202", 0) / runs["closed"]["load_s"]),
        "closed": {"statuses": runs["closed"]["statuses"], "seconds": runs["closed"]["load_s"]},
        "baseline": {"rate": runs["baseline"]["rate"], "statuses": statuses(logs["baseline"]),
                     "latency": base_lat},
        "overload": {"offered_rate": ro["rate"], "sent_rate": round(ro["sent_rate"]),
                     "max_send_lag_ms": ro["max_send_lag_ms"], "connections": ro["connections"],
                     "statuses": statuses(load_rows), "probes": nprobes,
                     "probe_statuses": statuses([r for r in over if r[0] == "P"]),
                     "without_retry_after": no_ra, "latency": latency(load_rows),
                     "unanswered": ro["unanswered"], "transport_errors": ro.get("lost", {})},
        "recovery_s": rec, "recovery_bound_ms": round(bound_us / 1000.0, 1),
        "lost": len(missing), "rss_max_kb": rss_by_phase(os.path.join(d, "rss.txt"), phases),
    }
    with open(a.json, "w") as f:
        json.dump(rep, f, indent=1)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(markdown(rep))
    o = rep["overload"]
    print(f"overload: sustainable {rep['sustainable_rate']}/s; offered {o['offered_rate']}/s for "
          f"{a.seconds} s, sent {o['sent_rate']}/s (max send lag {o['max_send_lag_ms']} ms, "
          f"{o['connections']} connections)")
    print(f"overload: answers {o['statuses']}; probes {o['probe_statuses']}; transport "
          f"errors by cause {o['transport_errors']}")
    print(f"overload: 202 latency baseline p50/p99 {base_lat['p50_ms']}/{base_lat['p99_ms']} ms, "
          f"during p50/p99/max {o['latency']['p50_ms']}/{o['latency']['p99_ms']}/"
          f"{o['latency']['max_ms']} ms")
    print(f"overload: recovered {rec} s after the arrivals ended (5 probes in a row 202 within "
          f"{rep['recovery_bound_ms']} ms)")
    for name, row in rep["rss_max_kb"].items():
        print(f"overload: rss {name:16} " + "  ".join(
            f"{p} {row.get(p, 0) / 1024:7.1f} MiB" for p in ("before", "during", "after")))
    failed = False
    for what, n in (("answers other than 202/429/503", sum(bad.values())),
                    ("429/503 without Retry-After", no_ra),
                    ("202s not in Postgres (lost)", len(missing)),
                    ("requests never answered", runs["overload"]["unanswered"]),
                    # At 3x or more, taking every request means queueing them.
                    ("none refused (429/503) at this factor: no admission control",
                     int(float(a.factor) >= 3 and not any(
                         r[2] in (429, 503) for r in load_rows)))):
        if n:
            failed = True
            print(f"FAILED: {what}: {n}" + (f" {bad}" if bad and "other" in what else ""))
    if missing:
        print("FAILED: lost, e.g. " + ", ".join(missing[:5]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
