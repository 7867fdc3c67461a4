"""Ansible filter pyfleet_upstreams: the load balancer's upstreams, computed from the inventory."""

import fnmatch
import ipaddress
import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: pyfleet_upstreams
short_description: One nginx upstream per app, over the inventory hosts that run it
version_added: "0.1.0"
author: pyfleet
description:
  - Takes the normalised apps (the output of the C(pyfleet_apps) filter) and returns
    one upstream per app whose servers are the hosts matched by the app's C(hosts)
    pattern, in inventory order.
  - A server's address is the host's C(pyfleet_private_address), else its
    C(ansible_host), else its inventory name; its port is the host's
    C(nginx_http_port), else O(default_port). IPv6 addresses are bracketed.
  - A host named in O(drained) is marked C(down) in every upstream it is in.
  - "The C(hosts) pattern is a subset of Ansible's: terms separated by C(:) or C(,);
    a term is a group, a host, C(all) or a shell-style wildcard over host names;
    C(&term) intersects, C(!term) excludes."
  - An app whose pattern matches no host fails with one line naming the app and the fix
    (nginx refuses an upstream without servers).
options:
  _input:
    description: The normalised apps.
    type: list
    elements: dict
    required: true
  groups:
    description: The C(groups) magic variable.
    type: dict
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: dict
    required: true
  drained:
    description: Inventory names of the hosts to mark C(down).
    type: list
    elements: str
    default: []
  default_port:
    description: Port of a host without C(nginx_http_port).
    type: int
    default: 80
  fallback:
    description: Fill each upstream's C(fallback) list.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Render the upstreams
  ansible.builtin.template:
    src: etc/nginx/pyfleet/upstreams.conf.j2
    dest: /etc/nginx/pyfleet/upstreams.conf
    mode: "0644"
  vars:
    upstreams: "{{ pyfleet_apps | pyfleet_apps(check_paths=false)
                   | pyfleet_upstreams(groups, hostvars, drained=['web2']) }}"
"""

RETURN = r"""
_value:
  description: The upstreams in app order.
  type: list
  elements: dict
  contains:
    app:
      description: The app's name.
      type: str
    name:
      description: The nginx upstream name, C(pyfleet_<app>).
      type: str
    domains:
      description: The app's domains.
      type: list
      elements: str
    health_path:
      description: The app's health path.
      type: str
    servers:
      description: "One mapping per host: C(host), C(address), C(port), C(endpoint) (C(address:port)), C(down)."
      type: list
      elements: dict
"""

UPSTREAM_PREFIX = "pyfleet_"
HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


def _fail(app, message):
    raise AnsibleFilterError(f"pyfleet_upstreams (app {app}): {message}")


def _all_hosts(groups):
    """Every inventory host, in inventory order."""
    hosts = list(groups.get("all") or [])
    seen = set(hosts)
    for members in groups.values():
        for host in members or []:
            if host not in seen:
                seen.add(host)
                hosts.append(host)
    return hosts


def _term_hosts(term, groups, everyone):
    """The hosts one pattern term names: a group, a host, or a wildcard over host names."""
    if term in groups:
        return set(groups[term] or [])
    if term in everyone:
        return {term}
    if any(c in term for c in "*?["):
        return set(fnmatch.filter(everyone, term))
    return set()


def match_hosts(pattern, groups):
    """The inventory hosts an Ansible-style ``pattern`` matches, in inventory order.

    ``web`` (a group), ``web1`` (a host), ``web:api`` or ``web,api`` (union),
    ``web:&eu`` (intersection), ``web:!web3`` (exclusion), ``web*`` (wildcard).
    """
    everyone = _all_hosts(groups)
    chosen, narrow, drop = set(), [], set()
    for term in re.split(r"[:,]", pattern):
        if not term:
            continue
        if term.startswith("&"):
            narrow.append(_term_hosts(term[1:], groups, everyone))
        elif term.startswith("!"):
            drop |= _term_hosts(term[1:], groups, everyone)
        else:
            chosen |= _term_hosts(term, groups, everyone)
    for subset in narrow:
        chosen &= subset
    chosen -= drop
    return [host for host in everyone if host in chosen]


def _address(app, host, hostvars):
    """``pyfleet_private_address``, else ``ansible_host``, else the inventory name; IPv6 in brackets."""
    hv = hostvars.get(host) or {}
    address = hv.get("pyfleet_private_address") or hv.get("ansible_host") or host
    address = str(address).strip()
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        if not HOSTNAME_RE.fullmatch(address):
            _fail(
                app,
                f"host {host}: {address!r} is not an IP address or host name; set pyfleet_private_address",
            )
        return address
    return f"[{ip}]" if ip.version == 6 else str(ip)


def _port(app, host, hostvars, default_port):
    """``nginx_http_port`` of the host, else ``default_port``, as an int in 1..65535."""
    hv = hostvars.get(host) or {}
    value = hv.get("nginx_http_port")
    value = default_port if value is None or value == "" else value
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if isinstance(value, bool) or not 1 <= port <= 65535:
        _fail(
            app,
            f"host {host}: nginx_http_port {value!r} is not a port number; set it to 1..65535",
        )
    return port


def pyfleet_upstreams(
    apps, groups, hostvars, drained=None, default_port=80, fallback=True
):
    """One upstream per app over the hosts that run it; see DOCUMENTATION."""
    if not isinstance(apps, list):
        raise AnsibleFilterError(
            f"pyfleet_upstreams: expected the list of normalised apps, got {type(apps).__name__}"
        )
    if not hasattr(groups, "get") or not hasattr(hostvars, "get"):
        raise AnsibleFilterError(
            "pyfleet_upstreams: pass the groups and hostvars magic variables"
        )
    if drained is None:
        drained = []
    if isinstance(drained, str) or not all(isinstance(h, str) for h in drained):
        raise AnsibleFilterError(
            f"pyfleet_upstreams: drained must be a list of host names, got {drained!r}"
        )
    down = set(drained)
    result = []
    for index, app in enumerate(apps):
        if not isinstance(app, dict) or not app.get("name") or not app.get("domains"):
            raise AnsibleFilterError(
                f"pyfleet_upstreams: element #{index} is not a normalised app; "
                "pipe pyfleet_apps through the pyfleet_apps filter first"
            )
        name = app["name"]
        pattern = app.get("hosts") or "web"
        hosts = match_hosts(pattern, groups)
        if not hosts:
            _fail(
                name,
                f"hosts {pattern!r} matches no inventory host; "
                "add hosts to that group or set hosts to a group that has some",
            )
        servers = []
        for host in hosts:
            address = _address(name, host, hostvars)
            port = _port(name, host, hostvars, default_port)
            servers.append(
                {
                    "host": host,
                    "address": address,
                    "port": port,
                    "endpoint": f"{address}:{port}",
                    "down": host in down,
                }
            )
        result.append(
            {
                "app": name,
                "name": UPSTREAM_PREFIX + name.replace("-", "_"),
                "domains": list(app["domains"]),
                "health_path": app.get("health_path") or "/healthz",
                "servers": servers,
                "fallback": (
                    list(dict.fromkeys(s["endpoint"] for s in servers))
                    if fallback
                    else []
                ),
            }
        )
    return result


class FilterModule:
    """pyfleet's load balancer filters."""

    def filters(self):
        """Filter name → function."""
        return {"pyfleet_upstreams": pyfleet_upstreams}
