#!/usr/bin/env python3
"""cf-allow's benchmark: cost ratios against the kernel's own bulk loaders.

For nftables and for iptables with ipset, at 1k, 10k and 100k ranges (non-adjacent /24 and
/48 ranges, half each, so aggregation cannot shrink them), measures in private network
namespaces:

  first    cf-allow's first sync (creates everything) in a fresh namespace
  delta    a sync whose list differs by one range (+1 -1), median
  no-op    a sync with nothing to do, median (nftables: with an unchanged ruleset
           generation, so the set elements are not dumped)
  base     `nft -f` (nftables) / `ipset restore` (ipset) of the same sets, in a fresh
           namespace, median
  RSS      cf-allow's peak resident memory over all its runs at that size

and prints one table of ms and ratios (cf-allow / base), in wall time and in CPU time. The process measures from inside
each namespace (setns), so `ip netns exec` is not part of any number. Needs root.

Feeds are `file://` lists; a list that would not fit the 1 MiB body limit of one source is
split into files of at most 40,000 ranges given as one merged `--source` alternative.

REACH=off runs the syncs without the reachability verdict (whose `nft -j list ruleset`
costs about as much as `nft -f` at 100k ranges), to show what the sync itself costs.
"""

import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time

CLONE_NEWNET = 0x40000000
SIZES = [int(n) for n in os.environ.get("SIZES", "1000 10000 100000").split()]
RUNS = int(os.environ.get("RUNS", "7"))
BIN = os.path.abspath(os.environ.get("BIN", "target/release/cf-allow"))
# REACH=off: syncs without the reachability verdict (`reachability: {check: false}`), to
# show what the sync itself costs; the verdict reads the whole ruleset with `nft -j`.
REACH = os.environ.get("REACH", "on") != "off"
CHUNK = 40_000
libc = ctypes.CDLL(None, use_errno=True)


def v4(i):
    """The i-th non-adjacent /24: every other /24 from 45.0.0.0."""
    k = 2 * i
    return f"{45 + k // 65536}.{(k // 256) % 256}.{k % 256}.0/24"


def v6(i):
    """The i-th non-adjacent /48: every other /48 of 2a01::/16."""
    k = 2 * i
    return f"2a01:{k // 65536:x}:{k % 65536:x}::/48"


def ranges(n, delta=False):
    """n ranges, IPv4 and IPv6 interleaved (so that every file of a split feed has both);
    with `delta`, the last IPv4 range is replaced by another one."""
    half = n // 2
    four = [v4(i) for i in range(half)]
    if delta:
        four[-1] = v4(half + 1)
    six = [v6(i) for i in range(n - half)]
    out = []
    for i in range(max(len(four), len(six))):
        out += four[i : i + 1] + six[i : i + 1]
    return out


def write_feed(directory, name, nets):
    """`--source` arguments for `nets`: one file, or several merged ones."""
    args = []
    for part, start in enumerate(range(0, len(nets), CHUNK)):
        chunk = nets[start : start + CHUNK]
        path = os.path.join(directory, f"{name}.{part}.txt")
        with open(path, "w") as f:
            f.write("\n".join(chunk) + "\n")
        args += ["--source", "file://" + path]
    return args


class Netns:
    """A named network namespace this process can enter and leave."""

    count = 0

    def __init__(self):
        Netns.count += 1
        self.name = f"cfa-bench-{os.getpid()}-{Netns.count}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)

    def __enter__(self):
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        os.close(fd)
        return self

    def __exit__(self, *exc):
        libc.setns(self.home, CLONE_NEWNET)
        os.close(self.home)
        subprocess.run(["ip", "netns", "del", self.name], check=True)


def timed(argv, stdin=None):
    """(wall ms, CPU ms, peak RSS KiB) of one run; fails loudly when the command fails.
    CPU time (user + system, the kernel's netlink work included) does not depend on how
    busy the machine is; wall time does."""
    start = time.perf_counter()
    p = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if stdin is not None:
        p.stdin.write(stdin.encode())
        p.stdin.close()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    ms = (time.perf_counter() - start) * 1000
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[:3])}… exited {p.returncode}: {err.decode()[-500:]}")
    return ms, (usage.ru_utime + usage.ru_stime) * 1000, usage.ru_maxrss


def nft_script(nets):
    four = [n for n in nets if ":" not in n]
    six = [n for n in nets if ":" in n]
    return f"""table inet cf_allow {{
  set cf_v4 {{ type ipv4_addr; flags interval; elements = {{ {", ".join(four)} }} }}
  set cf_v6 {{ type ipv6_addr; flags interval; elements = {{ {", ".join(six)} }} }}
  chain input {{
    type filter hook input priority filter; policy accept;
    ip saddr @cf_v4 tcp dport {{ 80, 443 }} accept
    ip6 saddr @cf_v6 tcp dport {{ 80, 443 }} accept
  }}
}}
"""


def ipset_script(nets):
    four = [n for n in nets if ":" not in n]
    six = [n for n in nets if ":" in n]
    lines = [f"create cf-allow-v4 hash:net family inet maxelem {max(len(four), 65536)}"]
    lines += [f"add cf-allow-v4 {n}" for n in four]
    lines += [f"create cf-allow-v6 hash:net family inet6 maxelem {max(len(six), 65536)}"]
    lines += [f"add cf-allow-v6 {n}" for n in six]
    return "\n".join(lines) + "\n"


def measure(work, backend, n):
    """Medians and ratios for one backend at one size."""
    extra = "iptables: {ipset: true}\n" if backend == "ipset" else ""
    if not REACH:
        extra += "reachability: {check: false}\n"
    kind = "nftables" if backend == "nftables" else "iptables"
    state = os.path.join(work, f"state-{backend}-{n}")
    config = os.path.join(work, f"config-{backend}-{n}.yaml")
    with open(config, "w") as f:
        f.write(
            f"state_dir: {state}\nports: [80, 443]\n"
            f"guard: {{max_shrink_percent: 100, max_entries: {2 * n}}}\n{extra}"
        )
    base = ranges(n)
    base_src = write_feed(work, f"base-{n}", base)
    delta_src = write_feed(work, f"delta-{n}", ranges(n, delta=True))
    sync = [BIN, "-q", "--config", config, "sync", "--backend", kind]
    rss = 0
    first = noops = deltas = None
    with Netns():
        first = timed(sync + base_src)
        rss = max(rss, first[2])
        noops = [timed(sync + base_src) for _ in range(RUNS)]
        deltas = [timed(sync + (delta_src if i % 2 == 0 else base_src)) for i in range(RUNS)]
        rss = max([rss] + [r[2] for r in noops + deltas])
    script = nft_script(base) if backend == "nftables" else ipset_script(base)
    loader = ["nft", "-f", "-"] if backend == "nftables" else ["ipset", "restore"]
    bases = []
    for _ in range(max(3, RUNS // 2)):
        with Netns():
            bases.append(timed(loader, stdin=script))
    med = lambda runs, i: statistics.median(r[i] for r in runs)
    return {
        "first": (first[0], first[1]),
        "delta": (med(deltas, 0), med(deltas, 1)),
        "noop": (med(noops, 0), med(noops, 1)),
        "base": (med(bases, 0), med(bases, 1)),
        "rss": rss,
    }


def main():
    if os.geteuid() != 0:
        sys.exit("bench: needs root (network namespaces)")
    work = tempfile.mkdtemp(prefix="cf-allow-bench.")
    rows = []
    for backend in os.environ.get("BACKENDS", "nftables ipset").split():
        for n in SIZES:
            rows.append((backend, n, measure(work, backend, n)))
    subprocess.run(["rm", "-rf", work])
    head = ("backend", "ranges", "first ms", "delta ms", "no-op ms", "base ms",
            "first/base", "delta/base", "no-op/base", "peak RSS MiB")
    print("Wall ms (CPU ms in brackets: user + system, the kernel's share included); "
          "ratios cf-allow / base, wall (CPU)"
          + ("." if REACH else "; without the reachability verdict (REACH=off)."))
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    cell = lambda m: f"{m[0]:.1f} ({m[1]:.1f})"
    ratio = lambda a, b, d: f"{a[0] / b[0]:.{d}f} ({a[1] / max(b[1], 0.001):.{d}f})"
    for backend, n, m in rows:
        base = "nft -f" if backend == "nftables" else "ipset restore"
        print(
            f"| {backend} | {n:,} | {cell(m['first'])} | {cell(m['delta'])} | {cell(m['noop'])} "
            f"| {cell(m['base'])} {base} | {ratio(m['first'], m['base'], 2)} "
            f"| {ratio(m['delta'], m['base'], 3)} | {ratio(m['noop'], m['base'], 3)} "
            f"| {m['rss'] / 1024:.1f} |"
        )


if __name__ == "__main__":
    main()
