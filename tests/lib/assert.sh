# shellcheck shell=bash
# assert.sh — PASS/FAIL reporting for the bash cluster tests.
# t_pass/t_fail print one plain line each; t_finish prints the tally and
# returns the exit status the test should end with.

T_PASSED=0
T_FAILED=0

t_pass() {
    echo "PASS: $*"
    T_PASSED=$((T_PASSED + 1))
}

t_fail() {
    echo "FAIL: $*"
    T_FAILED=$((T_FAILED + 1))
}

# t_check DESCRIPTION COMMAND...: PASS when COMMAND succeeds, else FAIL.
t_check() {
    local desc=$1
    shift
    if "$@"; then
        t_pass "$desc"
    else
        t_fail "$desc"
    fi
}

# t_finish NAME: prints "NAME: N passed, N failed"; returns 1 on any failure.
t_finish() {
    echo "$1: $T_PASSED passed, $T_FAILED failed"
    ((T_FAILED == 0 && T_PASSED > 0))
}

# Sanitizer reports in the given log files (ASan, LSan, UBSan): prints them
# and returns 1 when there is one.
t_no_sanitizer_reports() {
    local hits
    hits=$(grep -n -E 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer' \
        "$@" 2>/dev/null || true)
    if [[ -n $hits ]]; then
        echo "$hits" | head -n 40
        return 1
    fi
    return 0
}
