#!/usr/bin/env bash
# Benchmarks: wall time and peak memory of cf-allow against the real Cloudflare list (22
# ranges) and a long list (2,000 ranges), per backend, each in a fresh private network
# namespace; plus the per-rule shell loop cf-allow replaces, for comparison. Prints a table.
# Needs root (network namespaces). Run: make bench
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces)" >&2; exit 1; }
BIN=${BIN:-target/release/cf-allow}
[ -x "$BIN" ] || cargo build --release --locked
RUNS=${RUNS:-20}
work=$(mktemp -d /tmp/cf-allow-bench.XXXXXX)
ns=cfa-bench-$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# Feeds: Cloudflare's 22 ranges, and 1,000 + 1,000 documentation-free synthetic ranges.
printf 'state_dir: %s/s0\n' "$work" >"$work/c0.yaml"
"$BIN" --config "$work/c0.yaml" ranges --offline 2>/dev/null >"$work/cf.txt"
python3 - "$work/long.txt" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(1000):
        f.write(f"{45 + i // 250}.{(i % 250)}.{(i * 7) % 256}.0/24\n")
    for i in range(1000):
        f.write(f"2a0{(i // 4096) % 10}:{i % 4096:x}::/32\n")
PY

now_ms() { date +%s%N | awk '{printf "%.3f", $1/1e6}'; }

# measure NAME BACKEND FEED EXTRA_YAML: prints "first_ms noop_ms maxrss_kb"
measure() {
  local backend=$1 feed=$2 extra=$3 first noop rss t0 t1 total=0
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"; ip netns exec "$ns" ip link set lo up
  local cfg=$work/cfg-$backend.yaml
  printf 'state_dir: %s/state-%s\nbackend: %s\nguard: {max_shrink_percent: 100, max_entries: 100000}\n%s\n' \
    "$work" "$backend" "$backend" "$extra" >"$cfg"
  rm -rf "$work/state-$backend"
  t0=$(now_ms)
  ip netns exec "$ns" "$BIN" -q --config "$cfg" sync --source "file://$feed" >/dev/null
  t1=$(now_ms); first=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
  for _ in $(seq "$RUNS"); do
    t0=$(now_ms)
    ip netns exec "$ns" "$BIN" -q --config "$cfg" sync --source "file://$feed" >/dev/null
    t1=$(now_ms); total=$(awk -v t="$total" -v a="$t0" -v b="$t1" 'BEGIN{print t+b-a}')
  done
  noop=$(awk -v t="$total" -v n="$RUNS" 'BEGIN{printf "%.1f", t/n}')
  rss=$( { /usr/bin/time -f '%M' ip netns exec "$ns" "$BIN" -q --config "$cfg" sync --source "file://$feed" >/dev/null; } 2>&1 | tail -1)
  echo "$first $noop $rss"
}

# The shell loop people paste into cron: flush, then one iptables call per range.
shell_loop() {
  local feed=$1 t0 t1
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"
  t0=$(now_ms)
  ip netns exec "$ns" bash -c '
    iptables -N CF 2>/dev/null || iptables -F CF; ip6tables -N CF 2>/dev/null || ip6tables -F CF
    while read -r net; do
      case $net in *:*) ip6tables -A CF -p tcp -m multiport --dports 80,443 -s "$net" -j ACCEPT;;
                   *) iptables -A CF -p tcp -m multiport --dports 80,443 -s "$net" -j ACCEPT;; esac
    done <"$1"' _ "$feed"
  t1=$(now_ms)
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}'
}

[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
printf '%-28s %-8s %14s %16s %14s\n' backend list "first sync ms" "no-op sync ms" "peak RSS KiB"
printf '%-28s %-8s %14s %16s %14s\n' ---------------------------- -------- -------------- ---------------- --------------
for list in cf long; do
  feed=$work/$list.txt
  for variant in "nftables|" "iptables|iptables: {variant: nft}" "iptables (legacy)|iptables: {variant: legacy}" "iptables ipset|iptables: {ipset: true}"; do
    name=${variant%%|*}; extra=${variant#*|}
    backend=${name%% *}
    read -r first noop rss < <(measure "$backend" "$feed" "$extra")
    printf '%-28s %-8s %14s %16s %14s\n' "$name" "$list" "$first" "$noop" "$rss"
  done
  printf '%-28s %-8s %14s %16s %14s\n' "shell loop (iptables -A)" "$list" "$(shell_loop "$feed")" "-" "-"
done

# ufw: cf-allow's ufw backend next to the `ufw allow` loop every ufw script runs, each inside
# a fresh ../shared/ufw/ufw-sandbox (the real ufw, enabled; nothing on the host changes).
ufw_sandbox=${SHARED:-../shared}/ufw/ufw-sandbox
if [ -x "$ufw_sandbox" ]; then
  printf 'state_dir: %s/state-ufw\nbackend: ufw\nguard: {max_shrink_percent: 100}\n' "$work" >"$work/cfg-ufw.yaml"
  read -r first noop rss < <(FWSB_QUIET=1 "$ufw_sandbox" bash -c '
    now_ms() { date +%s%N | awk "{printf \"%.3f\", \$1/1e6}"; }
    bin=$1 cfg=$2 feed=$3 runs=$4 total=0
    t0=$(now_ms); "$bin" -q --config "$cfg" sync --source "file://$feed" >/dev/null; t1=$(now_ms)
    first=$(awk -v a="$t0" -v b="$t1" "BEGIN{printf \"%.1f\", b-a}")
    for _ in $(seq "$runs"); do
      t0=$(now_ms); "$bin" -q --config "$cfg" sync --source "file://$feed" >/dev/null; t1=$(now_ms)
      total=$(awk -v t="$total" -v a="$t0" -v b="$t1" "BEGIN{print t+b-a}")
    done
    rss=$( { /usr/bin/time -f %M "$bin" -q --config "$cfg" sync --source "file://$feed" >/dev/null; } 2>&1 | tail -1)
    echo "$first $(awk -v t="$total" -v n="$runs" "BEGIN{printf \"%.1f\", t/n}") $rss"
  ' _ "$(realpath "$BIN")" "$work/cfg-ufw.yaml" "$work/cf.txt" "$RUNS")
  printf '%-28s %-8s %14s %16s %14s\n' "ufw" cf "$first" "$noop" "$rss"
  loop=$(FWSB_QUIET=1 "$ufw_sandbox" bash -c '
    t0=$(date +%s%N)
    while read -r net; do ufw allow proto tcp from "$net" to any port 80,443 comment cloudflare >/dev/null; done <"$1"
    t1=$(date +%s%N); awk -v a="$t0" -v b="$t1" "BEGIN{printf \"%.1f\", (b-a)/1e6}"
  ' _ "$work/cf.txt")
  printf '%-28s %-8s %14s %16s %14s\n' "ufw allow loop" cf "$loop" "-" "-"
else
  echo "bench: $ufw_sandbox missing: ufw lines skipped" >&2
fi
