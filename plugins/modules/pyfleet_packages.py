#!/usr/bin/python
"""Documentation of the pyfleet_packages action (plugins/action/pyfleet_packages.py does the work)."""

DOCUMENTATION = r"""
module: pyfleet_packages
short_description: Debian packages present - one dpkg-query when they are, apt only when one is missing
version_added: "0.1.0"
author: pyfleet
description:
  - The apt module loads the whole package cache on every call (about half a
    second of CPU per host on a converged host). This action asks dpkg-query
    first and runs C(ansible.builtin.apt) with C(state=present) only on a host
    that lacks one of the packages.
  - Runs on the controller as an action plugin; the module file holds only this documentation.
options:
  name:
    description: A package name or a list of them.
    type: list
    elements: str
    required: true
  update_cache:
    description: Passed to apt when something is missing.
    type: bool
  cache_valid_time:
    description: Passed to apt when something is missing.
    type: int
  install_recommends:
    description: Passed to apt when something is missing.
    type: bool
"""

EXAMPLES = r"""
- name: Install nginx
  pyfleet_packages:
    name: nginx
    cache_valid_time: 86400
"""

RETURN = r"""
missing:
  description: The packages that were not installed before this task (empty on a converged host).
  type: list
  elements: str
  returned: always
"""
