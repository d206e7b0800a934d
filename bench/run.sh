#!/usr/bin/env bash
# Benchmarks, needs root (network namespaces). Run: make bench
# 1. bench/bench.py: nftables and ipset at 1k, 10k and 100k ranges against `nft -f` /
#    `ipset restore` of the same sets: first sync, one-range delta, no-op, peak RSS, as one
#    table of ratios (SIZES and RUNS override the sizes and repetitions), then again without
#    the reachability verdict (REACH=off).
# 2. Below: wall time and peak memory of every backend against the real Cloudflare list (22
#    ranges), each in a fresh private network namespace, and the per-rule shell loop cf-allow
#    replaces.
# 3. Then the reachability verdict: its time for the 22-range list against an empty ruleset,
#    firewalld's and a 10,000-rule ruleset (computed in full, and reused from the verdict
#    cache), and a no-op sync with and without it, with their ratio.
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

if [ "${BENCH_ONLY:-}" != verdict ]; then
  BIN="$BIN" RUNS="${BENCH_RUNS:-7}" python3 bench/bench.py
  echo
  BIN="$BIN" RUNS="${BENCH_RUNS:-7}" REACH=off python3 bench/bench.py
  echo
fi

# Feeds: Cloudflare's 22 ranges.
printf 'state_dir: %s/s0\n' "$work" >"$work/c0.yaml"
"$BIN" --config "$work/c0.yaml" ranges --offline 2>/dev/null >"$work/cf.txt"
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
# BENCH_ONLY=verdict skips the per-backend table.
if [ "${BENCH_ONLY:-}" != verdict ]; then
printf '%-28s %-8s %14s %16s %14s\n' backend list "first sync ms" "no-op sync ms" "peak RSS KiB"
printf '%-28s %-8s %14s %16s %14s\n' ---------------------------- -------- -------------- ---------------- --------------
for list in cf; do
  feed=$work/$list.txt
  for variant in "nftables|" "iptables|iptables: {variant: nft}" "iptables (legacy)|iptables: {variant: legacy}" "iptables ipset|iptables: {ipset: true}"; do
    name=${variant%%|*}; extra=${variant#*|}
    backend=${name%% *}
    read -r first noop rss < <(measure "$backend" "$feed" "$extra")
    printf '%-28s %-8s %14s %16s %14s\n' "$name" "$list" "$first" "$noop" "$rss"
  done
  printf '%-28s %-8s %14s %16s %14s\n' "shell loop (iptables -A)" "$list" "$(shell_loop "$feed")" "-" "-"
done
fi

# ---------------------------------------------------------------- reachability verdict
# verdict_times CONFIG: runs a no-op `sync -v` RUNS times in $ns and prints the median
# "read ms" and "verdict ms" that cf-allow logs for a verdict it computes (CONFIG has
# `reachability: {cache: false}`), or the median "reused … in X ms" of a cached one.
verdict_times() {
  local cfg=$1
  for _ in $(seq "$RUNS"); do
    ip netns exec "$ns" "$BIN" -v --config "$cfg" sync --source "file://$work/cf.txt" 2>&1 >/dev/null |
      sed -n -e 's/.*read the host.s rules in \([0-9.]*\) ms, verdict in \([0-9.]*\) ms.*/\1 \2/p' \
             -e 's/.*verdict reused from .* in \([0-9.]*\) ms.*/\1 0/p'
  done | sort -n | awk '{r[NR]=$1; v[NR]=$2} END {if (NR) {m=int((NR+1)/2); printf "%.2f %.2f\n", r[m], v[m]} else print "- -"}'
}

# fresh_ns RULESET_FILE: a new $ns with lo and a veth pair up (inbound interfaces for the
# verdict) and RULESET_FILE loaded with nft -f.
fresh_ns() {
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$ns" link add cfab0 type veth peer name cfab1
  ip -n "$ns" link set cfab0 up; ip -n "$ns" link set cfab1 up
  ip -n "$ns" addr add 192.0.2.1/24 dev cfab0
  [ -z "$1" ] || ip netns exec "$ns" nft -f "$1"
}

# noop_pair CONFIG_A CONFIG_B: the median wall times (ms) of RUNS no-op syncs in $ns with
# each config, after 3 warm-up runs; the two alternate, so that load from elsewhere on the
# machine weighs on both alike.
noop_pair() {
  local i cfg t0 t1
  for i in $(seq $((RUNS + 3))); do
    for cfg in "$1" "$2"; do
      # $EPOCHREALTIME: no program runs between the two timestamps but the sync.
      t0=$EPOCHREALTIME
      ip netns exec "$ns" "$BIN" -q --config "$cfg" sync --source "file://$work/cf.txt" >/dev/null 2>&1 || true
      t1=$EPOCHREALTIME
      [ "$i" -le 3 ] || awk -v c="$cfg" -v a="$t0" -v b="$t1" -v x="$1" 'BEGIN{printf "%s %.3f\n", (c == x ? "a" : "b"), (b-a)*1000}'
    done
  done | sort -k1,1 -k2,2n | awk '{t[$1, ++n[$1]] = $2}
    END {printf "%.1f %.1f\n", t["a", int((n["a"]+1)/2)], t["b", int((n["b"]+1)/2)]}'
}

# Rulesets: firewalld's (captured once from the real firewalld in its sandbox), and 10,000
# rules in a foreign input chain (none of which matches Cloudflare).
fw_sandbox=../shared/firewalld/firewalld-sandbox
if [ -x "$fw_sandbox" ]; then
  FWSB_QUIET=1 "$fw_sandbox" nft list ruleset >"$work/firewalld.nft" 2>/dev/null || : >"$work/firewalld.nft"
else
  : >"$work/firewalld.nft"
fi
python3 - "$work/big.nft" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("table inet big {\n  chain input {\n    type filter hook input priority 10; policy accept;\n")
    for i in range(10000):
        f.write(f"    ip saddr 10.{i // 250}.{i % 250}.1 tcp dport {1000 + i % 50000} drop\n")
    f.write("  }\n}\n")
PY
# Verdict on, cached (the default); verdict on, never cached; verdict off.
vcfg=$work/cfg-verdict.yaml
printf 'state_dir: %s/state-verdict\nbackend: nftables\n' "$work" >"$vcfg"
fcfg=$work/cfg-verdict-full.yaml
printf 'state_dir: %s/state-verdict\nbackend: nftables\nreachability: {cache: false}\n' "$work" >"$fcfg"
ncfg=$work/cfg-noverdict.yaml
printf 'state_dir: %s/state-verdict\nbackend: nftables\nreachability: {check: false}\n' "$work" >"$ncfg"

echo
printf '%-34s %10s %10s %11s %10s %11s %11s %8s\n' "reachability verdict (22 ranges)" "rules" "read ms" "verdict ms" "cached ms" "no-op ms" "without ms" "ratio"
printf '%-34s %10s %10s %11s %10s %11s %11s %8s\n' ---------------------------------- ---------- ---------- ----------- ---------- ----------- ----------- --------
for rs in "empty ruleset|" "firewalld|$work/firewalld.nft" "10,000-rule chain|$work/big.nft"; do
  name=${rs%%|*}; file=${rs#*|}
  if [ "$name" = firewalld ] && [ ! -s "$file" ]; then printf '%-34s %10s\n' "$name" "skipped (no $fw_sandbox)"; continue; fi
  fresh_ns "$file"
  rm -rf "$work/state-verdict"
  ip netns exec "$ns" "$BIN" -q --config "$vcfg" sync --source "file://$work/cf.txt" >/dev/null 2>&1 || true
  rules=$(ip netns exec "$ns" nft -a list ruleset | grep -c '# handle [0-9]*$' || true)
  read -r read_ms verdict_ms < <(verdict_times "$fcfg")
  read -r cached_ms _ < <(verdict_times "$vcfg")
  # The no-op sync with the (cached) verdict and without it (reachability.check: false).
  read -r with without < <(noop_pair "$vcfg" "$ncfg")
  printf '%-34s %10s %10s %11s %10s %11s %11s %8s\n' "$name" "$rules" "$read_ms" "$verdict_ms" "$cached_ms" \
    "$with" "$without" "$(awk -v a="$with" -v b="$without" 'BEGIN{printf "%.2f x", a/b}')"
done
echo "(read/verdict ms: a verdict computed in full, reachability.cache: false; cached ms: a reused one;"
echo " no-op ms: a no-op sync with the verdict, as configured by default; without ms: reachability.check: false)"

# ufw: cf-allow's ufw backend next to the `ufw allow` loop every ufw script runs, each inside
# a fresh ../shared/ufw/ufw-sandbox (the real ufw, enabled; nothing on the host changes).
# Both sandboxes get their client veth and default routes through it, so that the verdict
# sees an inbound interface and a route back (firewalld's reverse-path filter needs one; a
# sync that cannot tell, or finds Cloudflare blocked, exits 3).
# (BENCH_ONLY=verdict skips them too.)
[ "${BENCH_ONLY:-}" != verdict ] || exit 0
ufw_sandbox=${SHARED:-../shared}/ufw/ufw-sandbox
if [ -x "$ufw_sandbox" ]; then
  printf 'state_dir: %s/state-ufw\nbackend: ufw\nguard: {max_shrink_percent: 100}\n' "$work" >"$work/cfg-ufw.yaml"
  read -r first noop rss < <(FWSB_QUIET=1 "$ufw_sandbox" --client bash -c '
    ip route add default via 198.51.100.2; ip -6 route add default via 2001:db8:1::2
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
    FWSB_QUIET=1 "$fwsb" --client bash -c '
      set -e
      ip route add default via 198.51.100.2; ip -6 route add default via 2001:db8:1::2
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
