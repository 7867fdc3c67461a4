"""Ansible filter pyfleet_plan: the fleet plan, built once by pyfleet.plan.build."""

from pyfleet.errors import PyfleetError
from pyfleet.plan import build

DOCUMENTATION = r"""
name: pyfleet_plan
short_description: Build and check the fleet plan (apps, placement, upstreams, Celery) once
version_added: "0.2.0"
description:
  - Runs C(pyfleet.plan.build) with the inventory's hostvars and groups. It is the
    one function that C(fab topology), C(check), C(deploy) and C(site) run on the
    controller too, so the playbooks and the commands accept the same inventories.
  - Used once per run by playbooks/plan.yml, which stores the result as the fact
    C(pyfleet_plan); every role reads its inputs from it.
  - Never raises. A mistake comes back as a mapping with the one key C(error)
    (the one-line message), so that the task that stores the plan can keep
    C(no_log) (the plan holds the apps' secrets) and the next task shows it.
positional: groups
options:
  _input:
    description: Ansible's C(hostvars).
    type: dict
    required: true
  groups:
    description: Ansible's C(groups).
    type: dict
    required: true
  project_dir:
    description: What the apps' relative paths are relative to (the parent of playbooks/).
    type: str
    default: "."
"""

EXAMPLES = r"""
- name: Build and check the fleet plan
  ansible.builtin.set_fact:
    pyfleet_plan: "{{ hostvars | pyfleet_plan(groups, project_dir=playbook_dir | dirname) }}"
  run_once: true
  no_log: true
"""

RETURN = r"""
_value:
  description: The plan (see pyfleet/plan.py), or a mapping with the one key C(error).
  type: dict
"""


def pyfleet_plan(hostvars, groups, project_dir="."):
    """The fleet plan, or ``{"error": <one line>}``; see DOCUMENTATION."""
    try:
        return build(hostvars, groups, project_dir=project_dir)
    except PyfleetError as exc:
        return {"error": str(exc)}


class FilterModule:
    """pyfleet's fleet plan filter."""

    def filters(self):
        """Filter name -> function."""
        return {"pyfleet_plan": pyfleet_plan}
