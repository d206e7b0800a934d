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

# firewalld (inside ../shared/firewalld/firewalld-sandbox: the real firewalld on a private
# D-Bus): cf-allow's first sync (creates both ipsets and rich rules, one reload) and no-op
# sync, next to the loop people script instead: one `firewall-cmd --ipset=… --add-entry` per
# range, runtime and permanent.
fwsb=../shared/firewalld/firewalld-sandbox
if [ -x "$fwsb" ]; then
  for list in cf long; do
    feed=$work/$list.txt
    printf 'state_dir: %s/state-fw-%s\nbackend: firewalld\nports: [80, 443]\nguard: {max_shrink_percent: 100, max_entries: 100000}\n' \
      "$work" "$list" >"$work/cfg-fw-$list.yaml"
    FWSB_QUIET=1 "$fwsb" bash -c '
      set -e
      BIN=$1 cfg=$2 feed=$3 runs=$4 list=$5
      now_ms() { date +%s%N | awk "{printf \"%.3f\", \$1/1e6}"; }
      t0=$(now_ms); "$BIN" -q --config "$cfg" sync --source "file://$feed" >/dev/null 2>&1; t1=$(now_ms)
      first=$(awk -v a="$t0" -v b="$t1" "BEGIN{printf \"%.1f\", b-a}")
      t0=$(now_ms)
      for _ in $(seq "$runs"); do "$BIN" -q --config "$cfg" sync --source "file://$feed" >/dev/null 2>&1; done
      t1=$(now_ms); noop=$(awk -v a="$t0" -v b="$t1" -v n="$runs" "BEGIN{printf \"%.1f\", (b-a)/n}")
      rss=$( { /usr/bin/time -f %M "$BIN" -q --config "$cfg" sync --source "file://$feed" >/dev/null; } 2>&1 | tail -1)
      printf "%-28s %-8s %14s %16s %14s\n" "firewalld (D-Bus)" "$list" "$first" "$noop" "$rss"
      firewall-cmd -q --permanent --new-ipset=loop4 --type=hash:net
      firewall-cmd -q --permanent --new-ipset=loop6 --type=hash:net --option=family=inet6
      firewall-cmd -q --reload
      t0=$(now_ms)
      while read -r net; do
        case $net in *:*) s=loop6;; *) s=loop4;; esac
        firewall-cmd -q --ipset=$s --add-entry="$net"; firewall-cmd -q --permanent --ipset=$s --add-entry="$net"
      done <"$feed"
      t1=$(now_ms)
      printf "%-28s %-8s %14s %16s %14s\n" "firewall-cmd loop" "$list" "$(awk -v a="$t0" -v b="$t1" "BEGIN{printf \"%.1f\", b-a}")" "-" "-"
    ' _ "$(realpath "$BIN")" "$work/cfg-fw-$list.yaml" "$feed" "$RUNS" "$list"
    [ "$list" = cf ] && [ -z "${BENCH_FIREWALLD_LONG:-}" ] && break # 2,000 firewall-cmd calls take minutes
  done
else
  echo "bench: $fwsb missing: firewalld skipped" >&2
fi
