"""Ansible filters of the web tier: which apps a host runs, and their artifacts."""

import fnmatch

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: pyfleet_host_apps
short_description: The normalised apps whose C(hosts) pattern matches one host
version_added: "0.1.0"
author: pyfleet
description:
  - Takes the output of the C(pyfleet_apps) filter and keeps the apps that run on
    a host. An app's C(hosts) is an inventory pattern - a group or host name, a
    shell wildcard, or a union with C(:) or C(,), with C(&) (intersection) and
    C(!) (exclusion) terms, as Ansible's host patterns.
options:
  _input:
    description: Normalised apps (from C(pyfleet_apps)).
    type: list
    elements: dict
    required: true
  host:
    description: The inventory host name (C(inventory_hostname)).
    type: str
    required: true
  groups:
    description: The inventory's C(groups) mapping.
    type: dict
    required: true
  celery:
    description:
      - Also keep the apps whose C(celery.hosts) pattern matches the host (their
        Celery workers run there). Each app then has C(web) - true when its web
        units run on the host, false when the host only gets its release and
        C(current) (no web unit, no nginx).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Apps on this host
  ansible.builtin.debug:
    msg: "{{ pyfleet_apps | pyfleet_apps | pyfleet_host_apps(inventory_hostname, groups) | map(attribute='name') }}"
"""

RETURN = r"""
_value:
  description: The apps that run on the host, in inventory order.
  type: list
  elements: dict
"""


def _hosts_of(term, groups):
    """Hosts one pattern term names: a group, a host, or a wildcard over both."""
    all_hosts = set(groups.get("all", []))
    if term in groups:
        return set(groups[term])
    if term in all_hosts:
        return {term}
    if any(c in term for c in "*?["):
        found = {h for h in all_hosts if fnmatch.fnmatchcase(h, term)}
        for group in groups:
            if fnmatch.fnmatchcase(group, term):
                found |= set(groups[group])
        return found
    return set()


def pattern_hosts(pattern, groups):
    """The set of hosts an Ansible-style host pattern selects."""
    terms = [t.strip() for t in str(pattern).replace(",", ":").split(":") if t.strip()]
    selected, required, excluded = set(), [], set()
    for term in terms:
        if term.startswith("!"):
            excluded |= _hosts_of(term[1:], groups)
        elif term.startswith("&"):
            required.append(_hosts_of(term[1:], groups))
        else:
            selected |= _hosts_of(term, groups)
    for hosts in required:
        selected &= hosts
    return selected - excluded


def pyfleet_host_apps(apps, host, groups, celery=False):
    """The apps whose ``hosts`` pattern selects ``host``; see DOCUMENTATION."""
    if not isinstance(apps, list):
        raise AnsibleFilterError(f"pyfleet_host_apps: expected the list of normalised apps, got {type(apps).__name__}")
    if not celery:
        return [app for app in apps if host in pattern_hosts(app.get("hosts", "web"), groups)]
    found = []
    for app in apps:
        web = host in pattern_hosts(app.get("hosts", "web"), groups)
        workers = (app.get("celery") or {}).get("hosts")
        if web or (workers and host in pattern_hosts(workers, groups)):
            found.append(dict(app, web=web))
    return found


class FilterModule:
    """pyfleet's web tier filters."""

    def filters(self):
        """Filter name → function."""
        return {"pyfleet_host_apps": pyfleet_host_apps}
