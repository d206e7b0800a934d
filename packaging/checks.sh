# Shared by packaging/test.sh and packaging/ansible/tests/run.sh (source it, then set
# CHECKS_LABEL): counting checks, skipping on a missing prerequisite, and the closing
# "LABEL: N passed, N failed" line that CI reads.
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok    - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  - $*"; }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
skip() { # skip REASON: a missing prerequisite skips the whole test, but fails it under CI=true
    echo "${CHECKS_LABEL:?}: skipped: $*" >&2
    if [ "${CI:-}" = true ]; then
        fail "prerequisite: $*"
        finish
    fi
    exit 0
}
finish() {
    echo "${CHECKS_LABEL:?}: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}
