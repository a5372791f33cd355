#!/usr/bin/env bash
# test_multihost_cut.sh — host b loses its network under steady load: its
# cable (its port on the bridge) goes down, with node nb and gateway gwb on
# it. The client (host cl) posts to 80 conversations through haproxy only.
#  - haproxy marks gwb DOWN (two failed checks) and the registry declares nb
#    dead (BICKY_DEAD_AFTER_MS=2000); nc claims every conversation of nb and
#    they answer again within 3 s of the cut;
#  - in the window every answer is 202 or 503 with Retry-After; the only
#    other outcome allowed is a connection haproxy closed because it was
#    open on gwb when gwb was marked DOWN (shutdown-sessions), which the
#    client retries with its Idempotency-Key; their number is printed;
#  - the cable back: nb is alive again, gwb UP, nb owns conversations again,
#    and from then on every answer is 202 or 503 with Retry-After;
#  - every acknowledged message is in Postgres, none twice, seqs gapless.
set -uo pipefail

SRC=${BICKY_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BK_TAG=multihost_cut
# shellcheck source=deploy/local/lib.sh
source "$SRC/deploy/local/lib.sh"
# shellcheck source=deploy/multihost/lib.sh
source "$SRC/deploy/multihost/lib.sh"
# shellcheck source=tests/lib/assert.sh
source "$SRC/tests/lib/assert.sh"
# shellcheck source=tests/lib/cluster.sh
source "$SRC/tests/lib/cluster.sh"
# shellcheck source=tests/lib/failover.sh
source "$SRC/tests/lib/failover.sh"
# shellcheck source=tests/lib/multihost.sh
source "$SRC/tests/lib/multihost.sh"

export BICKY_DEAD_AFTER_MS=2000 BICKY_ECHO_DELAY_MS=5
mht_main multihost_cut

fo_load_start --convs 80 --workers 10 --max-retry-wait 0.1 || exit 1
t=$(fo_now)
t_check "steady load: 300 messages acknowledged" bk_wait_for 30 mht_acks_after "$t" 300
t_check "nb owns conversations before the cut ($(mht_claims nb))" test "$(mht_claims nb)" -gt 0

mht_cut b nb gwb
t_cut=$MHT_CUT_T t_down=$MHT_DOWN_T t_end=$MHT_END_T rec=$MHT_RECOVERY_MS
t_check "nb's conversations answer again within 3 s of the cut (${rec} ms)" \
    test "$rec" != none -a "${rec/none/99999}" -lt 3000

# closed_by_haproxy: the attempts that got no HTTP answer were open when gwb was
# marked DOWN (started before, ended by the close within a second after).
window=$MH_VAR/window.jsonl
python3 - "$FO_OUT/attempts.jsonl" "$t_cut" "$t_end" >"$window" <<'PY'
import json, sys
t_cut, t_end = float(sys.argv[2]), float(sys.argv[3])
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r["t1"] >= t_cut and r["t0"] <= t_end:
        print(json.dumps(r))
PY
answers_ok() {
    jq -s -e '[.[] | select(.s > 0) | select(.s != 202 and (.s != 503 or .ra == null))] | length == 0' "$window" >/dev/null
}
t_check "in the window every answer is 202 or 503 with Retry-After ($(jq -s -c 'group_by(.s) | map({(.[0].s | tostring): length}) | add' "$window"))" \
    answers_ok
closed=$(jq -s --argjson d "$t_down" '[.[] | select(.s < 0)] | map(select(.t0 <= $d and .t1 <= $d + 1.5)) | length' "$window")
unanswered=$(jq -s '[.[] | select(.s < 0)] | length' "$window")
echo "connections closed by haproxy when gwb went DOWN: $closed (attempts without an answer: $unanswered)"
t_check "every attempt without an answer was open on gwb when it was marked DOWN ($closed of $unanswered)" \
    test "$closed" = "$unanswered"

# The cable back: nb and gwb rejoin.
t_up=$(fo_now)
mht_plug b nb gwb
fo_load_stop
after=$(fo_analyze --since "$t_up")
t_check "after the rejoin only 202 and 503 with Retry-After ($(jq -c .statuses <<<"$after"))" \
    test "$(jq -r .bad <<<"$after")" = 0
res=$(fo_analyze --since 0)
echo "load: $(jq -c '{attempts, acked, statuses, bad}' <<<"$res")"
t_check "every acknowledged message is stored ($(jq -r .acked <<<"$res"))" fo_acked_stored
t_check "no message is stored twice" fo_no_duplicate
t_check "gapless seqs in Postgres" tc_gapless
t_check "nothing stuck 'processing'" bk_wait_for 10 eval \
    "[[ \$(tc_sql \"select count(*) from conversations where status = 'processing' and updated_at < now() - interval '5 seconds'\") == 0 ]]"
t_finish multihost_cut_inside
