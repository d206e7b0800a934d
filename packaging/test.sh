#!/usr/bin/env bash
# Packaging test: build the .deb (from the debug build `cargo test` already made, so the cost
# stays small), check its metadata and conffiles, unpack it into a scratch root and check every
# file, verify the systemd units and their exposure scores against that root, then install,
# remove and purge it in a second scratch root with `dpkg --root` (maintainer scripts run with
# DPKG_ROOT, never touching this host). The .rpm is checked too when `rpm` is installed.
#
#   packaging/test.sh
#
# Environment: CF_ALLOW_PACKAGE_PROFILE (dev, the default, or release), KEEP_TMP=1 keeps the
# scratch roots, CI=true turns a missing prerequisite into a failure.
# Last line: `packaging: N passed, M failed`; exit status non-zero when anything failed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
profile=${CF_ALLOW_PACKAGE_PROFILE:-dev}
# systemd-analyze security's scale is 0-100 for --threshold: 20 means an exposure of 2.0.
max_exposure=20

CHECKS_LABEL=packaging
# shellcheck source=packaging/checks.sh
. "$here/checks.sh"
notice() { echo "skip  - $*"; }
need() { # need PROGRAM: a missing prerequisite skips the whole test (fails under CI=true)
    command -v "$1" >/dev/null || skip "$1 is not installed"
}
need dpkg-deb
need dpkg
need cargo
need python3

tmp=$(mktemp -d /tmp/cf-allow-packaging.XXXXXX)
cleanup() {
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Build.
formats=(--deb)
if command -v rpm >/dev/null; then formats=(); fi # both
if ! "$here/build.sh" --profile "$profile" "${formats[@]}" > "$tmp/build.log" 2>&1; then
    cat "$tmp/build.log"
    fail "packaging/build.sh --profile $profile"
    finish
fi
version=$(cd "$repo" && cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json,sys; print([p for p in json.load(sys.stdin)["packages"] if p["name"] == "cf-allow"][0]["version"])')
arch=$(dpkg --print-architecture)
deb="$repo/target/packages/cf-allow_${version}-1_${arch}.deb"
check "the .deb is built ($(basename "$deb"))" test -s "$deb"
[ -s "$deb" ] || finish

# ---------------------------------------------------------------------------------------------
# Metadata.
field() { dpkg-deb --field "$deb" "$1"; }
check "Package: cf-allow" test "$(field Package)" = cf-allow
check "Version: $version-1" test "$(field Version)" = "$version-1"
check "Depends names libnftnl and libmnl (dpkg-shlibdeps)" \
    bash -c "dpkg-deb --field '$deb' Depends | grep -q libnftnl && dpkg-deb --field '$deb' Depends | grep -q libmnl"
dpkg-deb --control "$deb" "$tmp/control"
check "conffiles are exactly the config and the cron file" \
    test "$(sort "$tmp/control/conffiles" | tr '\n' ' ')" = "/etc/cf-allow/config.yaml /etc/cron.d/cf-allow "
for script in postinst prerm postrm; do
    check "maintainer script $script is present, executable and valid sh" \
        bash -c "test -x '$tmp/control/$script' && sh -n '$tmp/control/$script'"
done

# ---------------------------------------------------------------------------------------------
# Unpacked files.
root="$tmp/root"
mkdir -p "$root"
dpkg -x "$deb" "$root"
bin="$root/usr/bin/cf-allow"
mode_is() { test "$(stat -c %a "$root/$1")" = "$2"; }
for file in usr/bin/cf-allow; do
    check "/$file is installed, mode 755" mode_is "$file" 755
done
for file in \
    usr/lib/systemd/system/cf-allow.service \
    usr/lib/systemd/system/cf-allow.timer \
    usr/lib/systemd/system/cf-allow-boot.service \
    usr/lib/tmpfiles.d/cf-allow.conf \
    usr/share/cf-allow/systemd/csf.conf \
    etc/cf-allow/config.yaml \
    etc/cron.d/cf-allow \
    usr/share/man/man1/cf-allow.1.gz \
    usr/share/man/man1/cf-allow-sync.1.gz \
    usr/share/man/man1/cf-allow-remove.1.gz \
    usr/share/bash-completion/completions/cf-allow \
    usr/share/zsh/vendor-completions/_cf-allow \
    usr/share/fish/vendor_completions.d/cf-allow.fish \
    usr/share/doc/cf-allow/copyright; do
    check "/$file is installed, mode 644" mode_is "$file" 644
done
for file in packaging/systemd/cf-allow.service packaging/systemd/cf-allow.timer \
    packaging/systemd/cf-allow-boot.service packaging/config.yaml packaging/cron/cf-allow; do
    dest=$(grep -F "\"$file\"" "$repo/Cargo.toml" | head -1 | sed -E 's/.*, "([^"]+)", "[0-7]+"\].*/\1/')
    case "$dest" in */) dest="$dest$(basename "$file")" ;; esac
    check "/$dest is $file byte for byte" cmp -s "$repo/$file" "$root/$dest"
done
check "the packaged binary runs: --version prints cf-allow $version" \
    test "$("$bin" --version)" = "cf-allow $version"
check "the man page is the one the binary generates (clap_mangen)" \
    cmp -s <(gzip -dc "$root/usr/share/man/man1/cf-allow.1.gz") <("$bin" man)
check "the man page has a NAME section for cf-allow(1)" \
    bash -c "gzip -dc '$root/usr/share/man/man1/cf-allow.1.gz' | grep -q '^\.TH cf-allow 1'"
check "cf-allow-sync(1) has EXIT STATUS, FILES and CONFIGURATION sections" \
    bash -c "gzip -dc '$root/usr/share/man/man1/cf-allow-sync.1.gz' | grep -c '^\.SH \"\\?\(EXIT STATUS\|FILES\|CONFIGURATION\)' | grep -qx 3"
check "the bash completion is the generated one" \
    cmp -s "$root/usr/share/bash-completion/completions/cf-allow" <("$bin" completions bash)
check "the zsh completion is the generated one" \
    cmp -s "$root/usr/share/zsh/vendor-completions/_cf-allow" <("$bin" completions zsh)
check "the fish completion is the generated one" \
    cmp -s "$root/usr/share/fish/vendor_completions.d/cf-allow.fish" <("$bin" completions fish)
check "the bash completion is valid bash and completes subcommands" \
    bash -c "source '$root/usr/share/bash-completion/completions/cf-allow' &&
             fn=\$(complete -p cf-allow | sed -E 's/.*-F ([^ ]+).*/\\1/') &&
             COMP_WORDS=(cf-allow sy) COMP_CWORD=1 COMP_LINE='cf-allow sy' COMP_POINT=11 &&
             \$fn cf-allow sy cf-allow && [[ \" \${COMPREPLY[*]} \" == *' sync '* ]]"
for shell in zsh fish; do
    if command -v "$shell" >/dev/null; then
        file=$(ls "$root"/usr/share/{zsh/vendor-completions/_cf-allow,fish/vendor_completions.d/cf-allow.fish} | grep "$shell" | head -1)
        check "the $shell completion parses ($shell -n)" "$shell" -n "$file"
    fi
done
check "the packaged config loads (cf-allow check-config)" \
    bash -c "'$bin' --config '$root/etc/cf-allow/config.yaml' check-config >/dev/null"
for example in "$root"/usr/share/doc/cf-allow/examples/*.yaml; do
    check "packaged example $(basename "$example") loads" \
        bash -c "'$bin' --config '$example' check-config >/dev/null"
done

# Cron: every job line runs as root, its command is valid sh, and it defers to systemd.
cron_ok() {
    local line fields cmd jobs=0
    while IFS= read -r line; do
        case "$line" in '' | '#'* | *=*) continue ;; esac
        jobs=$((jobs + 1))
        if [[ $line == @* ]]; then fields=2; else fields=6; fi
        [ "$(echo "$line" | awk -v n="$fields" '{print $n}')" = root ] || return 1
        cmd=$(echo "$line" | awk -v n="$fields" '{for (i = n + 1; i <= NF; i++) printf "%s ", $i}')
        sh -n -c "$cmd" || return 1
        [[ $cmd == *'[ -d /run/systemd/system ] ||'* ]] || return 1
        [[ $cmd == *'cf-allow --quiet sync'* ]] || return 1
        [[ $cmd != *%* ]] || return 1 # cron would cut the command at an unescaped %
    done < "$root/etc/cron.d/cf-allow"
    [ "$jobs" -eq 2 ]
}
check "the cron file has an hourly and an @reboot job, root, valid sh, inactive under systemd" cron_ok

# ---------------------------------------------------------------------------------------------
# systemd: verify and exposure scores against the unpacked root.
if command -v systemd-analyze >/dev/null; then
    sysroot="$tmp/sysroot"
    cp -a "$root" "$sysroot"
    # The units refer to targets and services of the host's systemd; give the root a copy.
    for dir in /usr/lib/systemd/system /lib/systemd/system; do
        [ -d "$dir" ] && cp -rn "$dir/." "$sysroot/usr/lib/systemd/system/" 2>/dev/null
    done
    for unit in cf-allow.service cf-allow.timer cf-allow-boot.service; do
        # MANPATH: Documentation=man:cf-allow(1) must resolve to the packaged man page.
        out=$(MANPATH="$sysroot/usr/share/man" systemd-analyze verify --root="$sysroot" \
            "/usr/lib/systemd/system/$unit" 2>&1)
        rc=$?
        [ -z "$out" ] || echo "$out"
        check "systemd-analyze verify $unit is clean" test "$rc" -eq 0 -a -z "$out"
    done
    if systemd-analyze security --help 2>/dev/null | grep -- '--offline' >/dev/null; then
        for unit in cf-allow.service cf-allow-boot.service; do
            score=$(systemd-analyze security --offline=yes --root="$sysroot" "$unit" 2>&1 |
                sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
            echo "      systemd-analyze security $unit: ${score:-?}"
            check "exposure of $unit is at most 2.0 (${score:-unknown})" \
                bash -c "systemd-analyze security --offline=yes --root='$sysroot' \
                    --threshold=$max_exposure $unit >/dev/null 2>&1"
        done
    else
        notice "systemd-analyze security --offline needs systemd >= 250"
    fi
else
    notice "systemd-analyze is not installed: units not verified"
fi

# ---------------------------------------------------------------------------------------------
# The sandbox, emulated: without a running systemd, run the packaged binary the way
# cf-allow.service confines it — only the unit's CapabilityBoundingSet, no_new_privs, a
# read-only file system except the state directory, /proc limited to its own processes — in a
# private network namespace, for nftables and both iptables variants. (The system-call filter
# is not emulated.)
sandbox_caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$root/usr/lib/systemd/system/cf-allow.service" |
    tr ' ' '\n' | sed -n 's/^CAP_\(.*\)/+\L\1/p' | paste -sd, -)
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! command -v setpriv >/dev/null ||
    ! command -v unshare >/dev/null; then
    notice "sandbox emulation needs root, ip, setpriv and unshare"
else
    sbx="$tmp/sandbox"
    mkdir -p "$sbx/state" "$sbx/feed"
    printf '192.0.2.0/24\n198.51.100.0/24\n' > "$sbx/feed/v4.txt"
    printf '2001:db8::/32\n' > "$sbx/feed/v6.txt"
    cat > "$sbx/enter.sh" <<EOF
set -e
mount --make-rprivate /
mount --bind '$sbx/state' '$sbx/state'
for m in \$(awk '{print \$5}' /proc/self/mountinfo | sort -r); do
    case "\$m" in /proc*|/sys*|/dev*|'$sbx/state') continue ;; esac
    mount -o remount,bind,ro "\$m" 2>/dev/null || true
done
mount -t proc -o subset=pid,hidepid=invisible proc /proc
exec setpriv --bounding-set -all,$sandbox_caps --inh-caps -all --no-new-privs "\$@"
EOF
    ns="cfa-pkg-sandbox-$$"
    ip netns add "$ns" && ip -n "$ns" link set lo up
    for backend in nftables iptables:nft iptables:legacy; do
        name=${backend%%:*}
        variant=${backend#*:}
        case "$name" in
            nftables) command -v nft >/dev/null || { notice "nft missing"; continue; } ;;
            iptables) command -v "iptables-$variant-restore" >/dev/null || { notice "iptables-$variant missing"; continue; } ;;
        esac
        {
            echo "backend: $name"
            echo "sources: [[file://$sbx/feed/v4.txt, file://$sbx/feed/v6.txt]]"
            echo "state_dir: $sbx/state"
            echo "guard: {allow_reserved: true}"
            [ "$name" = iptables ] && echo "iptables: {variant: $variant, lockdown: true}"
        } > "$sbx/$name-$variant.yaml"
        sandboxed() {
            ip netns exec "$ns" unshare --mount --pid --fork sh "$sbx/enter.sh" \
                "$root/usr/bin/cf-allow" --config "$sbx/$name-$variant.yaml" "$@"
        }
        sandboxed sync --json > "$sbx/first.json" 2> "$sbx/first.err"
        check "sandboxed sync ($backend, caps ${sandbox_caps}) applies the list" \
            python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["changed"] and d["added"]["ipv4"] == ["192.0.2.0/24", "198.51.100.0/24"] else 1)' "$sbx/first.json" ||
            cat "$sbx/first.err"
        sandboxed sync --json > "$sbx/second.json" 2> "$sbx/second.err"
        check "sandboxed sync ($backend) a second time: nothing to do" \
            python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["changed"] is False else 1)' "$sbx/second.json" ||
            cat "$sbx/second.err"
        sandboxed remove --json > "$sbx/remove.json" 2> "$sbx/remove.err"
        check "sandboxed remove ($backend) cleans up" \
            python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["changed"] else 1)' "$sbx/remove.json" ||
            cat "$sbx/remove.err"
    done
    ip netns del "$ns"
fi

# ---------------------------------------------------------------------------------------------
# dpkg --root: install, remove, purge in a scratch root. The maintainer scripts run on this host
# with DPKG_ROOT set (--force-script-chrootless) and must only touch paths under it.
inst="$tmp/inst"
mkdir -p "$inst/var/lib/dpkg/info" "$inst/var/lib/dpkg/updates" "$inst/etc/csf"
: > "$inst/var/lib/dpkg/status"
: > "$inst/etc/csf/csf.conf" # a CSF host: the first install adds the sandbox drop-ins
dpkg_root() {
    dpkg --root="$inst" --log=/dev/null --force-script-chrootless --force-depends \
        --force-not-root "$@" > "$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log"; return 1; }
}
check "dpkg --root installs the package" dpkg_root -i "$deb"
check "dpkg records it as installed" \
    bash -c "dpkg --root='$inst' -s cf-allow 2>/dev/null | grep -q '^Status: install ok installed'"
check "the binary is installed under the root" test -x "$inst/usr/bin/cf-allow"
for unit in cf-allow.service cf-allow-boot.service; do
    check "postinst added the CSF drop-in for $unit" \
        test "$(readlink "$inst/etc/systemd/system/$unit.d/csf.conf")" = /usr/share/cf-allow/systemd/csf.conf
done
echo "# local edit" >> "$inst/etc/cf-allow/config.yaml"
check "dpkg --root removes the package" dpkg_root -r cf-allow
check "remove keeps the edited conffile" grep -q '^# local edit' "$inst/etc/cf-allow/config.yaml"
check "remove deletes the binary" test ! -e "$inst/usr/bin/cf-allow"
mkdir -p "$inst/var/lib/cf-allow" && : > "$inst/var/lib/cf-allow/last-good.json"
check "dpkg --root purges the package" dpkg_root -P cf-allow
check "purge deletes the conffiles" test ! -e "$inst/etc/cf-allow/config.yaml" -a ! -e "$inst/etc/cron.d/cf-allow"
check "purge deletes the CSF drop-ins" test ! -e "$inst/etc/systemd/system/cf-allow.service.d"
check "purge deletes /var/lib/cf-allow" test ! -e "$inst/var/lib/cf-allow"
check "purge leaves CSF's own files alone" test -e "$inst/etc/csf/csf.conf"

# ---------------------------------------------------------------------------------------------
# The .rpm, when rpm is there to read it.
rpmfile="$repo/target/packages/cf-allow-${version}-1.$(uname -m).rpm"
if command -v rpm >/dev/null; then
    check "the .rpm is built ($(basename "$rpmfile"))" test -s "$rpmfile"
    rpm -qlp "$rpmfile" 2>/dev/null | sort > "$tmp/rpm-files"
    for file in /usr/bin/cf-allow /usr/lib/systemd/system/cf-allow.service \
        /usr/lib/systemd/system/cf-allow.timer /usr/lib/systemd/system/cf-allow-boot.service \
        /usr/lib/tmpfiles.d/cf-allow.conf /etc/cf-allow/config.yaml /etc/cron.d/cf-allow \
        /usr/share/man/man1/cf-allow.1.gz /usr/share/bash-completion/completions/cf-allow \
        /usr/share/zsh/site-functions/_cf-allow /usr/share/fish/vendor_completions.d/cf-allow.fish; do
        check "the .rpm contains $file" grep -qx "$file" "$tmp/rpm-files"
    done
    check "the .rpm marks the config and cron file as config files" \
        test "$(rpm -qcp "$rpmfile" 2>/dev/null | sort | tr '\n' ' ')" = "/etc/cf-allow/config.yaml /etc/cron.d/cf-allow "
    check "the .rpm requires libnftnl and libmnl" \
        bash -c "rpm -qRp '$rpmfile' 2>/dev/null | grep -q '^libnftnl.so' && rpm -qRp '$rpmfile' 2>/dev/null | grep -q '^libmnl.so'"
    check "the .rpm has the install and uninstall scriptlets" \
        test "$(rpm -qp --scripts "$rpmfile" 2>/dev/null | grep -Ec '^(postinstall|preuninstall|postuninstall) scriptlet')" = 3
else
    notice "rpm is not installed: the .rpm is not built or checked here (make package builds it)"
fi

finish
