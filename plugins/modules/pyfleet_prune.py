#!/usr/bin/python
"""Documentation of the pyfleet_prune action (plugins/action/pyfleet_prune.py does the work)."""

DOCUMENTATION = r"""
module: pyfleet_prune
short_description: Remove what pyfleet set up on a host that the inventory no longer names
version_added: "0.3.0"
author: pyfleet
description:
  - Lists the pyfleet-made units (C(pyfleet-*) in /etc/systemd/system), nginx
    files (conf.d/pyfleet*.conf, the apps' upstream files, maintenance switches)
    and broker services (those with pyfleet's drop-in) on the host, and removes
    those the plan does not want there (an app dropped from the inventory, a
    worker type dropped from the host, a host taken out of a group, a switched
    broker kind). Units are stopped first; nginx is validated before it reloads,
    or stopped when the host serves nothing any more.
  - App data (base dir, user, env files) is kept, with a record under
    /var/lib/pyfleet/retired, unless C(purge). Broker data is always kept.
  - Runs on the controller as an action plugin (the decisions are pyfleet.orphans,
    which C(fab status) uses too); the module file holds only this documentation.
  - Supports check mode (says what it would remove).
options:
  wanted:
    description: What the host keeps, C(pyfleet_plan.hosts[inventory_hostname].wanted).
    type: dict
    required: true
  purge:
    description: Remove the data of apps no longer on the host too.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Remove what the inventory no longer names
  pyfleet_prune:
    wanted: "{{ pyfleet_plan.hosts[inventory_hostname].wanted }}"
    purge: "{{ pyfleet_purge | default(false) | bool }}"
"""

RETURN = r"""
removed:
  description: One phrase per thing removed (or, in check mode, that would be).
  type: list
  elements: str
  returned: always
"""
