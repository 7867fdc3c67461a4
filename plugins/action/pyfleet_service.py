"""pyfleet_service: a systemd unit started and enabled, read with one `systemctl show` when it already is.

ansible.builtin.systemd_service costs a host about 25 ms of CPU per task even when
nothing changes (its module run, `systemctl show`, `systemctl is-enabled`), and
its first run in an interpreter about 33 ms more to import (it imports
ansible-core's fact collectors). Every host runs one or more such tasks on every
converge. This action reads the unit's state with one `systemctl show`; only when
something is to be done (or asked for that the check does not cover) does
systemd_service run, with the task's own arguments.
"""

from __future__ import annotations

import shlex

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

SHOWN = ("LoadState", "ActiveState", "UnitFileState")


def unit_properties(show_output):
    """``systemctl show --property=...`` output as a dict (Key=value lines)."""
    properties = {}
    for line in show_output.splitlines():
        key, equals, value = line.partition("=")
        if equals:
            properties[key.strip()] = value.strip()
    return properties


def already_there(properties, state, enabled):
    """True when a unit with these ``properties`` needs nothing for ``state`` (started or None) and ``enabled`` (True or None).

    Strict on purpose: "activating", "static", "enabled-runtime" and the like are
    left to systemd_service, which knows what each means.
    """
    if properties.get("LoadState") != "loaded":
        return False
    if state == "started" and properties.get("ActiveState") != "active":
        return False
    return not (enabled and properties.get("UnitFileState") != "enabled")


def checkable(args):
    """(name, state, enabled) when ``args`` ask only what the check covers, else None."""
    if set(args) - {"name", "state", "enabled", "daemon_reload"}:
        return None
    state = args.get("state")
    enabled = None if args.get("enabled") is None else boolean(args["enabled"], strict=False)
    if state not in (None, "started") or enabled is False or (state is None and enabled is None):
        return None
    if boolean(args.get("daemon_reload", False), strict=False):
        return None
    return args.get("name"), state, enabled


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        name = args.get("name")
        if not isinstance(name, str) or not name:
            raise AnsibleActionFail(f"pyfleet_service: name must be a systemd unit name, not {name!r}")
        wanted = checkable(args)
        if wanted is not None:
            _, state, enabled = wanted
            # Read-only: also right in check mode. `--` keeps a name from being read as an option.
            show = self._low_level_execute_command(
                f"systemctl show --property={','.join(SHOWN)} -- {shlex.quote(name)}", sudoable=False
            )
            properties = unit_properties(show.get("stdout", ""))
            if show.get("rc") == 0 and already_there(properties, state, enabled):
                result.update(changed=False, name=name, status=properties, checked_only=True)
                if state:
                    result["state"] = state
                if enabled is not None:
                    result["enabled"] = enabled
                return result
        result.update(
            self._execute_module(module_name="ansible.legacy.systemd_service", module_args=args, task_vars=task_vars)
        )
        result["checked_only"] = False
        return result
