#!/usr/bin/python
"""Documentation of the pyfleet_service action (plugins/action/pyfleet_service.py does the work)."""

DOCUMENTATION = r"""
module: pyfleet_service
short_description: A systemd unit started and enabled - one systemctl show when it already is, systemd_service otherwise
version_added: "0.1.0"
author: pyfleet
description:
  - C(ansible.builtin.systemd_service) costs a host about 25 ms of CPU per task on a
    converged host, and about 33 ms more for its first run in a connection (it
    imports ansible-core's fact collectors). This action reads the unit's
    LoadState, ActiveState and UnitFileState with one C(systemctl show); when the unit
    is loaded, active (for O(state=started)) and enabled (for O(enabled=true)), the
    task is done. Otherwise, or with O(daemon_reload) true, it runs
    C(ansible.builtin.systemd_service) with the task's arguments.
  - Runs on the controller as an action plugin; the module file holds only this documentation.
options:
  name:
    description: The unit's name (a template's instance too, C(app-worker@default)).
    type: str
    required: true
  state:
    description: C(started) is checked first; any other state goes to systemd_service.
    type: str
    choices: [started, stopped, restarted, reloaded]
  enabled:
    description: C(true) is checked first; C(false) goes to systemd_service.
    type: bool
  daemon_reload:
    description: When true, systemd_service runs (and reloads systemd first).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Start nginx now and at boot
  pyfleet_service:
    name: nginx
    state: started
    enabled: true
"""

RETURN = r"""
checked_only:
  description: True when the unit was as asked and systemd_service did not run.
  type: bool
  returned: always
status:
  description: LoadState, ActiveState and UnitFileState when checked_only; systemd_service's status otherwise.
  type: dict
  returned: always
"""
