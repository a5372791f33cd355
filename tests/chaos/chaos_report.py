#!/usr/bin/env python3
"""chaos_report.py — the checks of tests/chaos/run, from Postgres and the clients' logs.

Reads the load's directory (--out: attempts.jsonl, convs.txt, sse/*.jsonl,
listeners.json), the injector's --faults log, the cluster's --logs directory
and its database (--database-url, through psql), prints the reliability
table, writes every figure as JSON (--json) and, with --markdown FILE, one
row of the docs/reliability.md table. Exit status: 1 when an acknowledged
message is missing from Postgres, a conversation's event or message seqs
have a gap or a duplicate, a conversation was written by a node that did not
hold it (or a user message started two turns), or an SSE listener missed or
got twice an event; 2 when the run itself is not usable (no message
acknowledged); else 0. The error window is reported, not asserted.

How each figure is computed (docs/reliability.md, Chaos):
- lost: message ids answered 202 that are not in table messages.
- gaps / duplicates: per conversation, over events and over messages,
  max(seq) - count(distinct seq) and count(*) - count(distinct seq); plus
  user messages stored twice (each content carries its Idempotency-Key).
- double activations: tests/chaos/run installs a deferred constraint trigger
  on events that records, at each commit, the writing session's
  application_name (bicky-<node id>, deploy/local/up sets PGAPPNAME) and the
  conversation_owners row of that conversation (node, epoch) in table
  chaos_writes. A write is unfenced when the row does not name its writer;
  a user message is started twice when two turn.started events name it.
  Double activations = conversations with an unfenced write or a message
  started twice. Reported beside it: the fence's refusals (node logs:
  "fence: conversation=... is held by another node") and writer
  interleavings (a writer that wrote a conversation at one claim epoch before
  and after another node's writes to it).
- SSE: each listener's received (id, seq) list against the conversation's
  events in Postgres up to the last id stored at the end: missed ids,
  duplicated ids, and whether it caught up live or only after a resume.
- error window per fault: for each message whose post failed at least once,
  from the start of its first failed attempt to its 202; per fault, the
  longest among the messages whose first failure ended between that fault
  and the next. Also the slowest message (first attempt to 202, failures or
  not) among those acknowledged between that fault and the next.
"""
import argparse
import glob
import json
import os
import subprocess
import sys


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--faults", required=True)
    p.add_argument("--logs", required=True)
    p.add_argument("--database-url", required=True)
    p.add_argument("--minutes", type=float, required=True)
    p.add_argument("--seed", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--markdown")
    p.add_argument("--label", default="")
    return p.parse_args()


def jsonl(path):
    recs = []
    with open(path) as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass  # a line cut by a stop
    return recs


def psql(url, sql, stdin=None):
    cmd = ["psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    if stdin is None:
        cmd += ["-c", sql]
    out = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        sys.exit("chaos_report: psql failed: " + out.stderr.strip())
    return [line.split("|") for line in out.stdout.splitlines() if line]


def role_of(name):
    return "node" if name.startswith("n") else name.rstrip("0123456789")


def fault_counts(faults):
    res = {}
    for f in faults:
        if f["kind"] == "none":
            continue
        k = "%s %s" % (f["kind"], role_of(f["target"]))
        res[k] = res.get(k, 0) + 1
    return dict(sorted(res.items()))


def db_checks(url, out):
    acked = os.path.join(out, "acked.txt")
    lost = psql(url, None, stdin="create temp table acked (id uuid);\n\\copy acked from '%s'\n"
                "select count(*) from acked a where not exists "
                "(select 1 from messages m where m.id = a.id);\n" % acked)[0][0]
    seqs = {}
    for table in ("events", "messages"):
        r = psql(url, "with t as (select conversation_id c, count(*) n, count(distinct seq) d, "
                 "max(seq) hi from %s where conversation_id is not null group by 1) "
                 "select coalesce(sum(hi - d), 0), coalesce(sum(n - d), 0) from t" % table)[0]
        seqs[table] = {"gaps": int(r[0]), "duplicates": int(r[1])}
    order = psql(url, "select count(*) from (select seq - lag(seq) over (partition by "
                 "conversation_id order by id) d from events where conversation_id is not null) x "
                 "where d <> 1")[0][0]
    dup_user = psql(url, "select count(*) from (select 1 from messages where role = 'user' "
                    "group by conversation_id, content having count(*) > 1) d")[0][0]
    return {"lost": int(lost), "seqs": seqs, "event_id_order_breaks": int(order),
            "user_messages_stored_twice": int(dup_user)}


def activation_checks(url, logs):
    unfenced = psql(url, "select count(*), count(distinct conversation_id) from chaos_writes "
                    "where owner is null or writer <> 'bicky-' || owner")[0]
    twice = psql(url, "select count(*), count(distinct conversation_id) from (select "
                 "conversation_id, action->>'user_message_id' from events where type = "
                 "'turn.started' group by 1, 2 having count(*) > 1) x")[0]
    convs = psql(url, "select count(distinct conversation_id) from (select conversation_id "
                 "from chaos_writes where owner is null or writer <> 'bicky-' || owner union all "
                 "select conversation_id from events where type = 'turn.started' group by "
                 "conversation_id, action->>'user_message_id' having count(*) > 1) x")[0][0]
    inter = psql(url, "with w as (select conversation_id c, seq, writer, owner_epoch ep, "
                 "lag(writer) over (partition by conversation_id order by seq) pw from "
                 "chaos_writes), r as (select c, writer, ep from w where pw is distinct from "
                 "writer) select count(*) from (select 1 from r group by c, writer, ep "
                 "having count(*) > 1) x")[0][0]
    audited = psql(url, "select (select count(*) from chaos_writes), (select count(*) from events "
                   "where conversation_id is not null)")[0]
    writers = dict(psql(url, "select writer, count(*) from chaos_writes group by 1 order by 1"))
    fence = {}
    for path in sorted(glob.glob(os.path.join(logs, "n*.log"))):
        with open(path, errors="replace") as f:
            fence[os.path.basename(path)[:-4]] = sum(
                1 for line in f if "fence: conversation=" in line)
    return {"double_activations": int(convs), "unfenced_writes": int(unfenced[0]),
            "messages_started_twice": int(twice[0]), "writer_interleavings": int(inter),
            "audited_events": int(audited[0]), "events": int(audited[1]),
            "writes_by_writer": {k: int(v) for k, v in writers.items()},
            "fence_refusals": sum(fence.values()), "fence_refusals_by_node": fence}


def sse_checks(url, out):
    with open(os.path.join(out, "listeners.json")) as f:
        summary = json.load(f)
    convs = sorted({lst["conv"] for lst in summary["listeners"]})
    stored = {c: [] for c in convs}
    if convs:
        for c, i, s in psql(url, "select conversation_id, id, seq from events where "
                            "conversation_id in (%s) order by id" %
                            ",".join("'%s'" % c for c in convs)):
            stored[c].append((int(i), int(s)))
    res, bad, resumes, live = [], 0, 0, 0
    for lst in summary["listeners"]:
        recs = jsonl(os.path.join(out, "sse", "%d.jsonl" % lst["listener"]))
        got = [r["id"] for r in recs if "id" in r]
        conns = [r for r in recs if "conn" in r]
        want = [i for i, _ in stored[lst["conv"]] if i <= lst["target"]]
        missed = len(set(want) - set(got))
        dups = len(got) - len(set(got))
        seqs = [r["seq"] for r in recs if "id" in r]
        order = sum(1 for a, b in zip(seqs, seqs[1:]) if b != a + 1)
        resumes += max(0, len(conns) - 1)
        live += 1 if lst["live"] else 0
        if missed or dups or order:
            bad += 1
        res.append({"listener": lst["listener"], "conv": lst["conv"], "received": len(got),
                    "stored": len(want), "missed": missed, "duplicated": dups,
                    "order_breaks": order, "connections": len(conns), "live": lst["live"],
                    "ends": sorted({c.get("end", "?") for c in conns})})
    return {"listeners": len(res), "bad_listeners": bad, "resumes": resumes,
            "caught_up_live": live, "db_quiet_at_end": summary["quiet"], "detail": res}


def error_windows(attempts, faults):
    """Per fault: the longest failed stretch and the slowest message (see the docstring)."""
    by_key = {}
    for a in sorted(attempts, key=lambda r: r["t0"]):
        by_key.setdefault(a["k"], []).append(a)
    times = [f["t"] for f in faults if f["kind"] != "none"]

    def slot(t):
        k = -1
        for i, ft in enumerate(times):
            if t >= ft:
                k = i
        return k

    slots = {i: {"failed_attempts": 0, "error_window_ms": 0, "slowest_ms": 0, "unresolved": 0}
             for i in range(-1, len(times))}
    for tries in by_key.values():
        ok = [a for a in tries if a["s"] == 202]
        fails = [a for a in tries if a["s"] != 202]
        # A message belongs to the fault before the end of its 202 (slowest) or of
        # its first failed attempt (error window): an attempt under way when the
        # fault came fails (or ends) after it.
        if ok:
            s = slots[slot(ok[0]["t1"])]
            s["slowest_ms"] = max(s["slowest_ms"], round((ok[0]["t1"] - tries[0]["t0"]) * 1000))
        if not fails:
            continue
        s = slots[slot(fails[0]["t1"])]
        s["failed_attempts"] += len(fails)
        if ok:
            s["error_window_ms"] = max(s["error_window_ms"],
                                       round((ok[0]["t1"] - fails[0]["t0"]) * 1000))
        else:
            s["unresolved"] += 1
    return slots


def statuses(attempts):
    res = {}
    for a in attempts:
        res[str(a["s"])] = res.get(str(a["s"]), 0) + 1
    return dict(sorted(res.items()))


def restarts(logs):
    res = {}
    try:
        with open(os.path.join(logs, "supervisor.log"), errors="replace") as f:
            for line in f:
                # "<time> supervisor: n1 pid=123 exited (signal 9) after 812 ms; ..."
                parts = line.split()
                if len(parts) > 3 and parts[1] == "supervisor:" and " exited (" in line:
                    res[parts[2]] = res.get(parts[2], 0) + 1
    except OSError:
        pass
    return dict(sorted(res.items()))


def median(v):
    v = sorted(v)
    return v[(len(v) - 1) // 2] if v else None


def build(args):
    attempts = jsonl(os.path.join(args.out, "attempts.jsonl"))
    faults = jsonl(args.faults)
    acked = sorted({a["m"] for a in attempts if a["s"] == 202})
    with open(os.path.join(args.out, "acked.txt"), "w") as f:
        f.write("".join(m + "\n" for m in acked))
    unexpected = [a for a in attempts if a["s"] not in (202, 503, 504, 429, -1, -2)]
    slots = error_windows(attempts, faults)
    real = [f for f in faults if f["kind"] != "none"]
    per_fault = []
    for i, f in enumerate(real):
        row = {"t": f["t"], "kind": f["kind"], "target": f["target"]}
        if "stop_s" in f:
            row["stopped_ms"] = round((f["t_end"] - f["t"]) * 1000)
        row.update(slots[i])
        per_fault.append(row)
    windows = [r["error_window_ms"] for r in per_fault]
    by_kind = {}
    for r in per_fault:
        by_kind.setdefault("%s %s" % (r["kind"], role_of(r["target"])), []).append(r)
    by_kind = {k: {"faults": len(v),
                   "failed_attempts": sum(r["failed_attempts"] for r in v),
                   "error_window_ms": {"median": median([r["error_window_ms"] for r in v]),
                                       "max": max(r["error_window_ms"] for r in v)},
                   "slowest_ms": {"median": median([r["slowest_ms"] for r in v]),
                                  "max": max(r["slowest_ms"] for r in v)}}
               for k, v in sorted(by_kind.items())}
    rep = {"label": args.label, "seed": args.seed, "minutes": args.minutes,
           "faults": len(real), "faults_by_kind": fault_counts(faults),
           "restarts": restarts(args.logs), "attempts": len(attempts),
           "acknowledged": len(acked), "statuses": statuses(attempts),
           "unexpected_answers": len(unexpected), "unexpected_sample": unexpected[:5],
           "baseline": slots[-1]}
    rep.update(db_checks(args.database_url, args.out))
    rep.update(activation_checks(args.database_url, args.logs))
    rep["sse"] = sse_checks(args.database_url, args.out)
    rep["error_window_ms"] = {"max": max(windows) if windows else None,
                              "median": median(windows),
                              "faults_over_3s": sum(1 for w in windows if w > 3000)}
    rep["by_kind"] = by_kind
    rep["per_fault"] = per_fault
    return rep


def failures(rep):
    res = []
    if rep["lost"]:
        res.append("acknowledged messages lost: %d" % rep["lost"])
    for t, v in rep["seqs"].items():
        if v["gaps"] or v["duplicates"]:
            res.append("%s seqs: %d gaps, %d duplicates" % (t, v["gaps"], v["duplicates"]))
    if rep["event_id_order_breaks"]:
        res.append("events out of seq order by id: %d" % rep["event_id_order_breaks"])
    if rep["user_messages_stored_twice"]:
        res.append("user messages stored twice: %d" % rep["user_messages_stored_twice"])
    if rep["double_activations"]:
        res.append("double activations: %d conversations" % rep["double_activations"])
    if rep["audited_events"] != rep["events"]:
        res.append("audit incomplete: %d of %d events" % (rep["audited_events"], rep["events"]))
    if rep["sse"]["bad_listeners"]:
        res.append("SSE listeners that missed or repeated events: %d" % rep["sse"]["bad_listeners"])
    return res


def print_table(rep):
    s, ew = rep["sse"], rep["error_window_ms"]
    rows = [
        ("minutes of faults, seed", "%s, %s" % (rep["minutes"], rep["seed"])),
        ("faults injected", "%d: %s" % (rep["faults"], ", ".join(
            "%s %d" % kv for kv in rep["faults_by_kind"].items()))),
        ("restarts (supervisor)", ", ".join("%s %d" % kv for kv in rep["restarts"].items())),
        ("post attempts / answers", "%d %s" % (rep["attempts"], json.dumps(rep["statuses"]))),
        ("messages acknowledged (202)", rep["acknowledged"]),
        ("acknowledged but lost", rep["lost"]),
        ("seq gaps / duplicates", "events %d / %d, messages %d / %d, stored twice %d" % (
            rep["seqs"]["events"]["gaps"], rep["seqs"]["events"]["duplicates"],
            rep["seqs"]["messages"]["gaps"], rep["seqs"]["messages"]["duplicates"],
            rep["user_messages_stored_twice"])),
        ("double activations", "%d (unfenced writes %d, messages started twice %d; fence "
         "refusals %d, interleavings %d)" % (
             rep["double_activations"], rep["unfenced_writes"], rep["messages_started_twice"],
             rep["fence_refusals"], rep["writer_interleavings"])),
        ("SSE listeners missing/repeating", "%d of %d (resumes %d, caught up live %d)" % (
            s["bad_listeners"], s["listeners"], s["resumes"], s["caught_up_live"])),
        ("error window per fault", "max %s ms, median %s ms, %d over 3 s" % (
            ew["max"], ew["median"], ew["faults_over_3s"])),
        ("unexpected answers", rep["unexpected_answers"]),
    ]
    for k, v in rows:
        print("  %-32s %s" % (k, v))
    print("  by kind (faults; failed attempts; error window median/max; slowest median/max):")
    for k, v in rep["by_kind"].items():
        print("    %-18s %3d  %5d  %6d / %6d ms  %6d / %6d ms" % (
            k, v["faults"], v["failed_attempts"], v["error_window_ms"]["median"],
            v["error_window_ms"]["max"], v["slowest_ms"]["median"], v["slowest_ms"]["max"]))
    print("  per fault (s from the first; failed attempts; error window; slowest message):")
    t0 = rep["per_fault"][0]["t"] if rep["per_fault"] else 0
    for f in rep["per_fault"]:
        what = "%s %s" % (f["kind"], f["target"])
        if "stopped_ms" in f:
            what += " %.1f s" % (f["stopped_ms"] / 1000)
        print("    %6.1f  %-22s %5d  %6d ms  %6d ms%s" % (
            f["t"] - t0, what, f["failed_attempts"], f["error_window_ms"], f["slowest_ms"],
            "  (%d unresolved)" % f["unresolved"] if f["unresolved"] else ""))


def markdown_row(rep):
    fk = rep["faults_by_kind"]
    kinds = "; ".join("%s %d" % kv for kv in fk.items())
    g = rep["seqs"]
    return ("| %s | %s | %d (%s) | %d | %d | %d | %d | %d | %d (%d refused by the fence) | "
            "%d of %d (%d resumes) | %s ms (median %s) |" % (
                rep["label"], rep["minutes"], rep["faults"], kinds, rep["acknowledged"],
                rep["lost"], g["events"]["gaps"] + g["messages"]["gaps"],
                g["events"]["duplicates"] + g["messages"]["duplicates"]
                + rep["user_messages_stored_twice"], rep["unexpected_answers"],
                rep["double_activations"], rep["fence_refusals"], rep["sse"]["bad_listeners"],
                rep["sse"]["listeners"], rep["sse"]["resumes"], rep["error_window_ms"]["max"],
                rep["error_window_ms"]["median"]))


def main():
    args = parse_args()
    rep = build(args)
    fails = failures(rep)
    rep["failures"] = fails
    rep["ok"] = not fails and rep["acknowledged"] > 0
    with open(args.json, "w") as f:
        json.dump(rep, f, indent=1)
    print_table(rep)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown_row(rep) + "\n")
    for line in fails:
        print("  FAILED: " + line)
    if rep["acknowledged"] == 0:
        print("  FAILED: no message was acknowledged")
        return 2
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
