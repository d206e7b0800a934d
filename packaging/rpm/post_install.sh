# cf-allow %post: make the units known to systemd; nothing is enabled or started
# (`systemctl enable --now cf-allow.timer cf-allow-boot.service` does that).
if [ "$1" -eq 1 ] && [ -e /etc/csf/csf.conf ]; then
    # First install on a CSF host: relax the sandbox for CSF (see the file's header).
    for unit in cf-allow.service cf-allow-boot.service; do
        dir="/etc/systemd/system/$unit.d"
        if [ ! -e "$dir/csf.conf" ] && [ ! -L "$dir/csf.conf" ]; then
            mkdir -p "$dir"
            ln -s /usr/share/cf-allow/systemd/csf.conf "$dir/csf.conf"
        fi
    done
fi
if [ -d /run/systemd/system ]; then
    systemd-tmpfiles --create cf-allow.conf >/dev/null 2>&1 || :
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
