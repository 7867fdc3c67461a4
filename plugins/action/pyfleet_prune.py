"""pyfleet_prune: remove what pyfleet set up on a host that the inventory no longer names.

One command lists the pyfleet-made units, nginx files and broker services on the
host; the controller compares them with what the plan wants there
(pyfleet.orphans, the same functions ``fab status`` marks orphans with); a
second command, only when something is left over, removes it. App data (base
dir, user, env files) stays unless ``purge``.
"""

from __future__ import annotations

import shlex

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from pyfleet import orphans


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("wanted", "purge"))

    def _root(self, command):
        result = self._low_level_execute_command(command, sudoable=True)
        if result.get("rc") != 0:
            raise AnsibleActionFail(
                f"pyfleet_prune: {(result.get('stderr') or result.get('stdout') or '').strip()[-300:]}"
            )
        return result.get("stdout", "")

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        keep = self._task.args.get("wanted")
        if not isinstance(keep, dict) or not {"units", "nginx_files", "nginx", "services", "apps"} <= set(keep):
            raise AnsibleActionFail(
                "pyfleet_prune: wanted must be pyfleet_plan.hosts[host].wanted (pyfleet.orphans.wanted)"
            )
        purge = bool(self._task.args.get("purge", False))
        found = orphans.parse_probe(self._root("sh -c " + shlex.quote(orphans.PROBE)))
        orphaned = orphans.orphans(found, keep)
        removed = orphans.describe(orphaned, purge) if orphans.anything(orphaned, purge) else []
        if not removed:
            return dict(result, changed=False, removed=[])
        if not self._play_context.check_mode:
            self._root("sh -c " + shlex.quote(orphans.removal_script(orphaned, purge)))
        return dict(result, changed=True, removed=removed)
