"""Ansible filter pyfleet_sandbox: the sandbox lines of a pyfleet systemd unit."""

from pyfleet.sandbox import directives

DOCUMENTATION = r"""
name: pyfleet_sandbox
short_description: The systemd sandbox lines every pyfleet unit gets, minus what the app relaxes
version_added: "0.1.0"
author: pyfleet
description:
  - One list of hardening options (pyfleet/sandbox.py) for app server, Celery
    worker, beat and Flower units; C(systemd-analyze security) scores them about 1.
  - Options the app's C(sandbox_relax) names are left out, each with a comment
    giving its reason.
options:
  _input:
    description: The app's C(sandbox_relax) list (C(option), C(reason)).
    type: list
    elements: dict
    required: true
  read_write:
    description: Paths the unit may write (ReadWritePaths).
    type: list
    elements: str
    default: []
  ip_allow:
    description: Addresses the unit may reach over IP; everything else is denied.
    type: list
    elements: str
    default: []
  syscalls:
    description: System call groups allowed on top of @system-service.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
# In a unit template:
# {% for line in app.sandbox_relax | pyfleet_sandbox(read_write=[app.shared_dir], ip_allow=['localhost']) %}
# {{ line }}
# {% endfor %}
"""

RETURN = r"""
_value:
  description: Unit file lines, in a stable order.
  type: list
  elements: str
"""


def pyfleet_sandbox(relax, read_write=(), ip_allow=(), syscalls=()):
    """The sandbox lines of a unit (see pyfleet.sandbox.directives)."""
    return directives(relax or [], read_write, ip_allow, syscalls)


class FilterModule:
    def filters(self):
        return {"pyfleet_sandbox": pyfleet_sandbox}
