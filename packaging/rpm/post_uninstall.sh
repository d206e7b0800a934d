# cf-allow %postun: on erase, drop the CSF drop-ins the package added; reload systemd.
if [ "$1" -eq 0 ]; then
    rm -f /etc/systemd/system/cf-allow.service.d/csf.conf /etc/systemd/system/cf-allow-boot.service.d/csf.conf
    rmdir /etc/systemd/system/cf-allow.service.d /etc/systemd/system/cf-allow-boot.service.d 2>/dev/null || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
