# cf-allow %preun: on erase (not upgrade), disable and stop the units. The firewall rules
# cf-allow created stay in place (run `cf-allow remove` first to delete them).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now cf-allow.timer cf-allow-boot.service >/dev/null 2>&1 || :
    systemctl stop cf-allow.service >/dev/null 2>&1 || :
fi
exit 0
