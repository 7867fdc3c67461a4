"""Ansible filters over pyfleet's app specs: pyfleet_apps and pyfleet_app_workers."""

import os
import sys

from ansible.errors import AnsibleFilterError

try:
    from pyfleet.apps import normalize_apps, workers_for
    from pyfleet.errors import PyfleetError
except ImportError:
    # Ansible loads this file by path: make the repo root (two directories up) importable.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from pyfleet.apps import normalize_apps, workers_for
    from pyfleet.errors import PyfleetError

DOCUMENTATION = r"""
name: pyfleet_apps
short_description: Validate pyfleet_apps and fill in every default
version_added: "0.1.0"
author: pyfleet
description:
  - Checks the inventory variable C(pyfleet_apps) (a list of app specs) and returns
    the apps with defaults filled, paths made absolute and derived names added
    (user, group, base_dir, releases_dir, shared_dir, current_link, socket_dir,
    unit_name, module, callable, worker_class).
  - The first mistake fails the task with one line naming the variable path, the
    app, what is wrong and the fix, e.g.
    C(pyfleet_apps[1].kind (app api) - 'wsgx' is not one of wsgi, asgi; set kind=wsgi or kind=asgi).
  - The result holds the apps' C(secrets) in clear text; use C(no_log) on tasks that show it.
  - Companion filter C(pyfleet_app_workers(app, cpus)) gives the number of server
    processes for one normalised app on a host with C(cpus) CPUs.
options:
  _input:
    description: The value of C(pyfleet_apps).
    type: list
    elements: dict
    required: true
  cpus:
    description:
      - The host's CPU count (C(ansible_processor_vcpus)). When given, C(workers)
        is computed for that host; else it stays null unless set in the spec.
    type: int
  project_dir:
    description: The directory that relative source and requirements paths are relative to.
    type: path
    default: "."
  check_paths:
    description: Check that local sources and requirements files exist on the controller.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Normalise the apps once, on the controller
  ansible.builtin.set_fact:
    pyfleet_apps_normalized: "{{ pyfleet_apps | pyfleet_apps(project_dir=playbook_dir ~ '/..') }}"
  run_once: true
  delegate_to: localhost

- name: Server processes of each app on this host
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item | pyfleet_app_workers(ansible_processor_vcpus) }} workers"
  loop: "{{ pyfleet_apps_normalized }}"
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
_value:
  description: The apps in inventory order, each a mapping with every key of the spec filled in.
  type: list
  elements: dict
"""


def _plain(value):
    """Deep copy into builtin dicts and lists (AppSpec is a dict subclass)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def pyfleet_apps(apps, cpus=None, project_dir=".", check_paths=True):
    """Validate ``pyfleet_apps``; see DOCUMENTATION."""
    try:
        return _plain(normalize_apps(apps, cpus=cpus, project_dir=project_dir, check_paths=check_paths))
    except PyfleetError as exc:
        raise AnsibleFilterError(str(exc)) from None


def pyfleet_app_workers(app, cpus):
    """Server processes for one normalised app on a host with ``cpus`` CPUs."""
    try:
        return workers_for(app, int(cpus) if isinstance(cpus, str) and cpus.isdigit() else cpus)
    except PyfleetError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """pyfleet's app spec filters."""

    def filters(self):
        """Filter name → function."""
        return {"pyfleet_apps": pyfleet_apps, "pyfleet_app_workers": pyfleet_app_workers}
