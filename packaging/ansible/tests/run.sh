#!/usr/bin/env bash
# Tests for the cf_allow Ansible module, with ansible-core from PyPI (installed into a venv
# under target/), against localhost inside a private network namespace: the nftables backend
# works on that namespace's ruleset only, never the host's. The list comes from file:// feeds
# with documentation addresses.
#
#   packaging/ansible/tests/run.sh
#
# Environment: CF_ALLOW_BIN (binary to use; default: `cargo build` and target/debug/cf-allow),
# ANSIBLE_VENV (default target/ansible-venv), KEEP_TMP=1 keeps the scratch directory (logs),
# CI=true turns a skip into a failure.
# Last line: `ansible: N passed, M failed`; exit status non-zero when anything failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
ANSIBLE_CORE_SPEC=${ANSIBLE_CORE_SPEC:-"ansible-core>=2.16,<2.20"}

CHECKS_LABEL=ansible
# shellcheck source=packaging/checks.sh
. "$root/packaging/checks.sh"

[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, nftables)"
for program in ip nft python3; do
    command -v "$program" >/dev/null || skip "$program is not installed"
done

# The binary.
if [ -n "${CF_ALLOW_BIN:-}" ]; then
    bin=$CF_ALLOW_BIN
else
    (cd "$root" && cargo build --locked --quiet --bin cf-allow) || { fail "cargo build"; finish; }
    target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps --locked |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    bin=$target_dir/debug/cf-allow
fi
[ -x "$bin" ] || { fail "cf-allow binary at $bin"; finish; }

# ansible-core from PyPI, in a venv kept between runs.
venv=${ANSIBLE_VENV:-$root/target/ansible-venv}
if ! "$venv/bin/ansible-playbook" --version >/dev/null 2>&1; then
    echo "installing $ANSIBLE_CORE_SPEC into $venv" >&2
    python3 -m venv "$venv" || { fail "python3 -m venv (install python3-venv)"; finish; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$ANSIBLE_CORE_SPEC" ||
        { fail "pip install $ANSIBLE_CORE_SPEC"; finish; }
fi
"$venv/bin/ansible-playbook" --version 2>&1 | sed -n 1p

# Scratch space and the namespace.
tmp=$(mktemp -d /tmp/cf-allow-ansible.XXXXXX)
ns="cfa-ansible-$$"
cleanup() {
    ip netns del "$ns" 2>/dev/null
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
ip netns add "$ns" || { fail "ip netns add $ns"; finish; }
ip -n "$ns" link set lo up

mkdir -p "$tmp/feed" "$tmp/state" "$tmp/ansible-local" "$tmp/ansible-remote"
printf '192.0.2.0/24\n198.51.100.0/24\n' > "$tmp/feed/v4.txt"
printf '2001:db8::/32\n' > "$tmp/feed/v6.txt"
: > "$tmp/ansible.cfg"

in_ns() { ip netns exec "$ns" "$@"; }
ruleset() { in_ns nft list ruleset; }

# play NAME [ansible-playbook args...]: runs the test playbook; the result lands in $tmp/NAME.json.
play() {
    local name=$1
    shift
    (
        cd "$tmp" &&
            in_ns env LC_ALL=C.UTF-8 \
                ANSIBLE_CONFIG="$tmp/ansible.cfg" \
                ANSIBLE_COLLECTIONS_PATH="$root/packaging/ansible" \
                ANSIBLE_LOCAL_TEMP="$tmp/ansible-local" \
                ANSIBLE_REMOTE_TEMP="$tmp/ansible-remote" \
                ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
                ANSIBLE_PYTHON_INTERPRETER="$venv/bin/python" \
                "$venv/bin/ansible-playbook" -i localhost, -c local "$here/playbook.yml" \
                -e "feed_dir=$tmp/feed" -e "state_dir=$tmp/state" -e "cf_allow_bin=$bin" \
                -e "result_file=$tmp/$name.json" "$@"
    ) > "$tmp/$name.log" 2>&1
    local rc=$?
    if [ $rc -ne 0 ]; then
        echo "---- ansible-playbook output ($name, exit $rc)"
        cat "$tmp/$name.log"
        echo "----"
    fi
    return $rc
}

# field NAME EXPR: evaluates a Python expression over the result `r` of step NAME.
field() {
    python3 - "$tmp/$1.json" "$2" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    r = json.load(f)
value = eval(sys.argv[2], {"r": r})
sys.exit(0 if value else 1)
EOF
}

# (grep without -q reads all input: no SIGPIPE for nft under pipefail)
has_range() { ruleset | grep -- "$1" >/dev/null; }

# 1. First run: the ranges go in.
check "first run succeeds" play first --diff
check "first run: changed is true" field first 'r["changed"] is True and r["backend"] == "nftables"'
check "first run: added lists the feed" \
    field first 'r["added"] == {"ipv4": ["192.0.2.0/24", "198.51.100.0/24"], "ipv6": ["2001:db8::/32"]}'
check "first run: --diff shows the new ranges and the table it creates" \
    field first 'r["diff"]["before"] == "" and r["diff"]["after"].startswith("192.0.2.0/24\n198.51.100.0/24\n2001:db8::/32\n# repair: create table")'
check "first run: the namespace's ruleset holds 192.0.2.0/24" has_range 192.0.2.0/24
check "first run: the namespace's ruleset holds 2001:db8::/32" has_range 2001:db8::/32

# 2. Idempotence.
check "second run succeeds" play second
check "second run: changed is false" field second 'r["changed"] is False and r["unchanged"] == 3'

# 3. Check mode after the feed changed: reports the change, changes nothing, shows the diff.
printf '192.0.2.0/24\n203.0.113.0/24\n' > "$tmp/feed/v4.txt"
ruleset > "$tmp/before-check.nft"
check "check mode succeeds" play check --check --diff
check "check mode: changed is true" field check 'r["changed"] is True and r["dry_run"] is True'
check "check mode: the ruleset is unchanged" \
    cmp -s "$tmp/before-check.nft" <(ruleset)
check "check mode: --diff shows 198.51.100.0/24 removed and 203.0.113.0/24 added" \
    field check '"198.51.100.0/24" in r["diff"]["before"] and "198.51.100.0/24" not in r["diff"]["after"] and "203.0.113.0/24" in r["diff"]["after"] and "203.0.113.0/24" not in r["diff"]["before"]'
check "check mode: diff output printed by ansible" grep -q '^+203.0.113.0/24' "$tmp/check.log"

# 4. Apply the change.
check "changed feed applied" play apply --diff
check "changed feed: changed is true, one added, one removed" \
    field apply 'r["changed"] is True and r["added"]["ipv4"] == ["203.0.113.0/24"] and r["removed"]["ipv4"] == ["198.51.100.0/24"]'
check "changed feed: 203.0.113.0/24 is in the ruleset" has_range 203.0.113.0/24
check "changed feed: 198.51.100.0/24 is gone" bash -c "! { ip netns exec $ns nft list ruleset | grep -q 198.51.100.0/24; }"

# 5. The same settings from a config file (`config:`): nothing to do.
cat > "$tmp/config.yaml" <<EOF
backend: nftables
ports: [80, 443]
sources:
  - [file://$tmp/feed/v4.txt, file://$tmp/feed/v6.txt]
state_dir: $tmp/state
guard:
  allow_reserved: true
EOF
check "config file run succeeds" play config -e "config_file=$tmp/config.yaml"
check "config file run: changed is false" field config 'r["changed"] is False'

# 6. A failure carries cf-allow's own error line; the firewall stays as it was.
ruleset > "$tmp/before-failure.nft"
check "bad port: the task fails (ignored)" play failure -e '{"ports": [0], "expect_failure": true}'
check "bad port: msg is cf-allow's error line naming the key" \
    field failure 'r["failed"] is True and r["msg"].startswith("cf-allow: error:") and "port 0" in r["msg"]'
check "bad port: the ruleset is unchanged" cmp -s "$tmp/before-failure.nft" <(ruleset)

# 6b. Another layer blocks Cloudflare (a foreign base chain dropping TCP 443 after cf-allow's
#     table accepted it): cf-allow exits 3, the task fails with the deciding rule and the fix,
#     and the reachability object comes back.
in_ns nft -f - <<'NFT'
table inet blocker {
	chain input {
		type filter hook input priority 10; policy accept;
		tcp dport 443 drop
	}
}
NFT
check "blocked by another layer: the task fails (ignored)" play blocked -e '{"expect_failure": true}'
check "blocked by another layer: rc 3, msg names the deciding rule and a fix" \
    field blocked 'r["failed"] is True and r["rc"] == 3 and "blocked by another layer" in r["msg"] and "inet blocker input" in r["msg"] and "fix:" in r["msg"]'
check "blocked by another layer: reachability says not reachable on 443" \
    field blocked 'r["reachability"]["reachable"] is False and r["reachability"]["blocked"][0]["ports"] == [443] and r["reachability"]["blocked"][0]["by"]["table"] == "inet blocker"'
in_ns nft delete table inet blocker

# 7. state: absent in check mode changes nothing.
check "absent in check mode succeeds" play absent-check -e cf_state=absent --check
check "absent in check mode: changed is true" field absent-check 'r["changed"] is True and len(r["removed"]) > 0'
check "absent in check mode: the ruleset is unchanged" cmp -s "$tmp/before-failure.nft" <(ruleset)

# 8. state: absent cleans up, and is idempotent.
check "absent succeeds" play absent -e cf_state=absent --diff
check "absent: changed is true" field absent 'r["changed"] is True'
check "absent: no cf-allow table or range is left" \
    bash -c "! { ip netns exec $ns nft list ruleset | grep -Eq 'cf_allow|192.0.2.0|2001:db8'; }"
check "absent again succeeds" play absent-again -e cf_state=absent
check "absent again: changed is false" field absent-again 'r["changed"] is False'

# 9. The example playbook parses and names modules that exist (the collection's included).
check "examples/playbook.yml passes --syntax-check" bash -c "cd '$tmp' && env LC_ALL=C.UTF-8 \
    ANSIBLE_CONFIG='$tmp/ansible.cfg' ANSIBLE_COLLECTIONS_PATH='$root/packaging/ansible' \
    ANSIBLE_LOCAL_TEMP='$tmp/ansible-local' ANSIBLE_NOCOLOR=1 \
    '$venv/bin/ansible-playbook' --syntax-check -i localhost, '$root/examples/playbook.yml' >'$tmp/syntax.log' 2>&1 || { cat '$tmp/syntax.log'; false; }"

check "ansible-doc renders the module's documentation" bash -c "cd '$tmp' && env LC_ALL=C.UTF-8 \
    ANSIBLE_CONFIG='$tmp/ansible.cfg' ANSIBLE_COLLECTIONS_PATH='$root/packaging/ansible' \
    ANSIBLE_LOCAL_TEMP='$tmp/ansible-local' ANSIBLE_NOCOLOR=1 \
    '$venv/bin/ansible-doc' cfallow.cf_allow.cf_allow 2>&1 | grep -- 'mirror cf-allow' >/dev/null"

finish
