"""Ansible filter pyfleet_app_workers: server processes of one app on a host."""

from ansible.errors import AnsibleFilterError

from pyfleet.apps import workers_for
from pyfleet.errors import PyfleetError

DOCUMENTATION = r"""
name: pyfleet_app_workers
short_description: How many server processes an app runs on a host
version_added: "0.1.0"
author: pyfleet
description:
  - For one normalised app (an entry of C(pyfleet_plan.apps)) on a host with C(cpus)
    CPUs - the app's C(workers) when set, else 2*cpus+1 for gunicorn's sync and
    gthread workers and cpus for async servers, at most 64.
options:
  _input:
    description: One normalised app.
    type: dict
    required: true
  cpus:
    description: The host's CPU count (C(ansible_processor_vcpus)).
    type: int
    required: true
"""

EXAMPLES = r"""
- name: Server processes of each app on this host
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item | pyfleet_app_workers(ansible_processor_vcpus) }} workers"
  loop: "{{ pyfleet_plan.hosts[inventory_hostname].apps }}"
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
_value:
  description: The number of server processes.
  type: int
"""


def pyfleet_app_workers(app, cpus):
    """Server processes for one normalised app on a host with ``cpus`` CPUs."""
    try:
        return workers_for(app, int(cpus) if isinstance(cpus, str) and cpus.isdigit() else cpus)
    except PyfleetError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """pyfleet's app spec filters."""

    def filters(self):
        """Filter name -> function."""
        return {"pyfleet_app_workers": pyfleet_app_workers}
