# Shared by packaging/test.sh and packaging/ansible/tests/run.sh (source it, then set
# CHECKS_LABEL): counting checks and the closing "LABEL: N passed, N failed" line that CI reads.
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok    - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  - $*"; }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
finish() {
    echo "${CHECKS_LABEL:?}: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}
