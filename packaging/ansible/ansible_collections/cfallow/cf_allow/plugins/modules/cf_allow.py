#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cf-allow developers
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Ansible module wrapping the cf-allow binary."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: cf_allow
short_description: Keep the firewall allowlist in sync with Cloudflare's IP ranges
version_added: "0.1.0"
description:
  - Runs C(cf-allow sync) (O(state=present)) or C(cf-allow remove) (O(state=absent)) on the
    target, which fetches Cloudflare's published IPv4 and IPv6 ranges, validates them, and
    applies only the difference to nftables, iptables/ip6tables or CSF.
  - The configuration parameters mirror cf-allow's config file (C(/etc/cf-allow/config.yaml)).
    Without O(config), the module writes a temporary config file from them; keys left unset take
    cf-allow's built-in defaults, and C(/etc/cf-allow/config.yaml) is not read. To share one
    configuration with the systemd timer, pass O(config=/etc/cf-allow/config.yaml) instead.
  - C(changed) comes from cf-allow's JSON document. In check mode the module runs
    C(sync --dry-run --json) (or C(remove --dry-run --json)) and changes nothing.
  - With C(--diff), the ranges that are (or would be) added and removed are shown.
  - When cf-allow fails, the task fails with cf-allow's own error line as the message; the
    firewall is then exactly as it was before the run.
  - When cf-allow exits 3 (the list was applied, or would be in check mode, but another layer of
    the host's firewall still blocks or may block Cloudflare), the task fails with cf-allow's
    warnings (the deciding rule and the fix) as the message; C(changed) and C(reachability)
    are still returned.
options:
  state:
    description:
      - V(present) runs C(cf-allow sync); V(absent) runs C(cf-allow remove), which deletes
        everything cf-allow created and nothing else.
    type: str
    choices: [present, absent]
    default: present
  backend:
    description: Firewall backend. Unset means cf-allow detects it (firewalld when it runs, else CSF, else an active ufw, else nftables or iptables, whichever lets Cloudflare in).
    type: str
    choices: [nftables, iptables, csf, firewalld, ufw]
  ports:
    description: TCP destination ports opened to Cloudflare; V([]) means all ports. cf-allow's default is V([80, 443]).
    type: list
    elements: int
  sources:
    description:
      - Where the list comes from, as alternatives tried in order. Each alternative is one URL
        (C(https://), C(http://) or C(file://)) or a list of URLs whose lists are merged.
    type: list
    elements: raw
  timeout_secs:
    description: Seconds allowed for each request.
    type: int
  state_dir:
    description: Cache of the last good list, ETag and lock file (cf-allow's default C(/var/lib/cf-allow)).
    type: path
  extra_cidrs:
    description: Your own ranges, always allowed next to Cloudflare's.
    type: list
    elements: str
  guard:
    description: Sanity limits, keys C(max_shrink_percent), C(max_entries), C(allow_reserved).
    type: dict
  nftables:
    description: nftables backend settings, keys C(table), C(into) (a dict C(family), C(table), C(chain)), C(lockdown).
    type: dict
  iptables:
    description: iptables backend settings, keys C(chain), C(hooks), C(ipset), C(lockdown), C(variant), C(lock_wait_secs).
    type: dict
  csf:
    description: CSF backend settings, keys C(dir), C(apply) (C(live) or C(restart)), C(reload).
    type: dict
  ufw:
    description: ufw backend settings, keys C(dir), C(defaults), C(lock_wait_secs).
    type: dict
  firewalld:
    description: firewalld backend settings, keys C(zones), C(lockdown), C(timeout_secs).
    type: dict
  config:
    description:
      - A cf-allow config file on the target to use instead of the parameters above (which
        must then be left unset).
    type: path
  offline:
    description: Use no network; apply the last good cached list, else the list compiled into cf-allow.
    type: bool
    default: false
  force:
    description: Pass cf-allow's shrink guard (never its syntax or sanity checks).
    type: bool
    default: false
  binary:
    description: Path of the cf-allow binary. Default is C(cf-allow) found on PATH (or in C(/usr/bin), C(/usr/local/bin)).
    type: path
notes:
  - Needs root on the target (become), like cf-allow itself.
  - Supports check mode and diff mode.
requirements:
  - the cf-allow binary on the target
author:
  - cf-allow developers
"""

EXAMPLES = r"""
- name: Allow Cloudflare to reach the origin
  cfallow.cf_allow.cf_allow:
    backend: nftables
    ports: [80, 443]
    state: present

- name: Docker host, iptables with the DOCKER-USER hook, lockdown
  cfallow.cf_allow.cf_allow:
    backend: iptables
    ports: [443]
    iptables:
      hooks: [INPUT, DOCKER-USER]
      lockdown: true

- name: Same configuration as the systemd timer
  cfallow.cf_allow.cf_allow:
    config: /etc/cf-allow/config.yaml

- name: Take cf-allow's rules out again
  cfallow.cf_allow.cf_allow:
    backend: nftables
    state: absent
"""

RETURN = r"""
backend:
  description: The backend cf-allow used.
  returned: success
  type: str
  sample: nftables
dry_run:
  description: True in check mode.
  returned: success
  type: bool
added:
  description: Ranges added (or that would be added), per family.
  returned: success and O(state=present)
  type: dict
  sample: {"ipv4": ["198.41.128.0/17"], "ipv6": []}
removed:
  description:
    - With O(state=present), the ranges removed per family (a dict C(ipv4), C(ipv6)).
    - With O(state=absent), one line per firewall object deleted (a list).
  returned: success
  type: raw
unchanged:
  description: Number of ranges already in place.
  returned: success and O(state=present)
  type: int
list:
  description: Where the list came from (C(source), C(etag), C(origin)) and its size per family.
  returned: success and O(state=present)
  type: dict
reachability:
  description:
    - Whether Cloudflare's packets get through the host's whole input path after the sync
      (C(reachable), C(checked), C(blocked), C(unknown)), as in C(cf-allow sync --json).
  returned: O(state=present)
  type: dict
  sample: {"reachable": true, "checked": {"ranges": 22, "ports": [80, 443]}, "blocked": [], "unknown": []}
repairs:
  description: Structural fixes cf-allow applied (or would apply), such as a missing jump or table.
  returned: success and O(state=present)
  type: list
  elements: str
cmd:
  description: The cf-allow command line that ran.
  returned: always
  type: list
  elements: str
stderr:
  description: cf-allow's log output.
  returned: failure
  type: str
generated_config:
  description: The config file written from the parameters (the error's line numbers refer to it).
  returned: failure without O(config)
  type: str
"""

import ipaddress
import json
import os

from ansible.module_utils.basic import AnsibleModule

# Parameters that mirror keys of cf-allow's config file.
CONFIG_KEYS = (
    "backend",
    "ports",
    "sources",
    "timeout_secs",
    "state_dir",
    "extra_cidrs",
    "guard",
    "nftables",
    "iptables",
    "csf",
    "ufw",
    "firewalld",
)


def error_line(stderr, rc):
    """cf-allow's own error line (or clap's usage error) from its stderr."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    for line in lines:
        if line.startswith("cf-allow: error:"):
            return line
    for line in lines:
        if line.startswith("error:"):
            return "cf-allow: " + line
    if lines:
        return lines[-1]
    return "cf-allow exited with status %d and no message" % rc


def check_sources(module, sources):
    """Each alternative is a URL or a non-empty list of URLs."""
    for alternative in sources or []:
        if isinstance(alternative, str):
            continue
        if (
            isinstance(alternative, list)
            and alternative
            and all(isinstance(url, str) for url in alternative)
        ):
            continue
        module.fail_json(
            msg="sources: each entry must be a URL or a list of URLs, got %r" % (alternative,)
        )


def write_config(module):
    """Writes the mirrored parameters as a config file; returns its path.

    JSON is valid YAML, so no YAML library is needed on the target.
    """
    config = dict(
        (key, module.params[key]) for key in CONFIG_KEYS if module.params[key] is not None
    )
    path = os.path.join(module.tmpdir, "cf-allow-config.yaml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


# cf-allow's exit code for "applied (or would apply), but Cloudflare is still blocked by
# another layer"; its JSON document is printed all the same.
EXIT_UNREACHABLE = 3


def unreachable_message(doc):
    """The failure message for exit 3: cf-allow's warnings (deciding rule and fix)."""
    warnings = [str(w) for w in doc.get("warnings") or []]
    head = "cf-allow: applied, but Cloudflare is still blocked by another layer of the firewall"
    if doc.get("dry_run"):
        head = "cf-allow: would apply, but Cloudflare would still be blocked by another layer of the firewall"
    if not warnings:
        return head
    return head + ": " + " | ".join(warnings)


def run_json(module, cmd, generated):
    """Runs cf-allow; returns (its JSON document, its exit code) or fails the task with its
    error line. Exit 3 comes back with its document: the caller reports it."""
    rc, stdout, stderr = module.run_command(cmd, check_rc=False)
    if rc not in (0, EXIT_UNREACHABLE):
        extra = {}
        if generated:
            # The error's line numbers refer to this file, written from the parameters.
            with open(generated) as handle:
                extra["generated_config"] = handle.read()
        module.fail_json(
            msg=error_line(stderr, rc), rc=rc, cmd=cmd, stdout=stdout, stderr=stderr, **extra
        )
    try:
        return json.loads(stdout), rc
    except ValueError as exc:
        module.fail_json(
            msg="cf-allow printed no JSON document: %s" % exc,
            rc=rc,
            cmd=cmd,
            stdout=stdout,
            stderr=stderr,
        )


def family_lines(families):
    """`{"ipv4": [...], "ipv6": [...]}` as lines, IPv4 first."""
    families = families or {}
    return list(families.get("ipv4") or []) + list(families.get("ipv6") or [])


def range_key(cidr):
    """Sort key: IPv4 before IPv6, then by address and prefix length."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
        return (net.version, int(net.network_address), net.prefixlen, cidr)
    except ValueError:
        return (9, 0, 0, cidr)


def present_diff(module, base, doc):
    """Before/after range lists for --diff: what the firewall holds and what it will hold."""
    added = family_lines(doc.get("added"))
    removed = family_lines(doc.get("removed"))
    rc, stdout, _stderr = module.run_command(base + ["status", "--json"], check_rc=False)
    before = None
    if rc in (0, 2):
        try:
            before = family_lines(json.loads(stdout).get("ranges"))
        except (ValueError, AttributeError):
            before = None
    if before is None:
        # No status: show only the difference.
        return {
            "before_header": "ranges removed",
            "after_header": "ranges added",
            "before": "".join(line + "\n" for line in removed),
            "after": "".join(line + "\n" for line in added),
        }
    if module.check_mode:
        current = before
    else:
        # The sync already ran: the firewall holds the new list; rebuild the old one.
        current = [r for r in before if r not in added] + removed
    gone = set(removed)
    after = [r for r in current if r not in gone] + [r for r in added if r not in current]
    current = sorted(current, key=range_key)
    after = sorted(after, key=range_key)
    # Structural fixes (a missing table, jump or rule) show up as added comment lines.
    after += ["# repair: %s" % repair for repair in doc.get("repairs") or []]
    backend = doc.get("backend", "firewall")
    return {
        "before_header": "%s (before)" % backend,
        "after_header": "%s (after)" % backend,
        "before": "".join(line + "\n" for line in current),
        "after": "".join(line + "\n" for line in after),
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            backend=dict(type="str", choices=["nftables", "iptables", "csf", "firewalld", "ufw"]),
            ports=dict(type="list", elements="int"),
            sources=dict(type="list", elements="raw"),
            timeout_secs=dict(type="int"),
            state_dir=dict(type="path"),
            extra_cidrs=dict(type="list", elements="str"),
            guard=dict(type="dict"),
            nftables=dict(type="dict"),
            iptables=dict(type="dict"),
            csf=dict(type="dict"),
            ufw=dict(type="dict"),
            firewalld=dict(type="dict"),
            config=dict(type="path"),
            offline=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            binary=dict(type="path"),
        ),
        mutually_exclusive=[("config", key) for key in CONFIG_KEYS],
        supports_check_mode=True,
    )
    params = module.params
    check_sources(module, params["sources"])

    binary = params["binary"] or module.get_bin_path(
        "cf-allow", required=True, opt_dirs=["/usr/bin", "/usr/local/bin"]
    )
    generated = None if params["config"] else write_config(module)
    base = [binary, "--config", params["config"] or generated]

    if params["state"] == "present":
        cmd = base + ["sync", "--json"]
        if params["offline"]:
            cmd.append("--offline")
        if params["force"]:
            cmd.append("--force")
    else:
        cmd = base + ["remove", "--json"]
    if module.check_mode:
        cmd.append("--dry-run")

    doc, rc = run_json(module, cmd, generated)
    if rc == EXIT_UNREACHABLE:
        result = dict(doc)
        result["changed"] = bool(doc.get("changed"))
        module.fail_json(msg=unreachable_message(doc), rc=rc, cmd=cmd, **result)
    for warning in doc.pop("warnings", None) or []:
        module.warn("cf-allow: %s" % warning)
    result = dict(doc)
    result["changed"] = bool(doc.get("changed"))
    result["cmd"] = cmd

    if module._diff and result["changed"]:
        if params["state"] == "present":
            result["diff"] = present_diff(module, base, doc)
        else:
            result["diff"] = {
                "before_header": "%s (cf-allow objects)" % doc.get("backend", "firewall"),
                "after_header": "removed",
                "before": "".join(str(line) + "\n" for line in doc.get("removed") or []),
                "after": "",
            }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
