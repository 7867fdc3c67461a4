"""pyfleet_packages: Debian packages present, with the apt module only when one is missing.

The apt module loads the whole package cache on every call (about half a second
of CPU per host even when everything is installed). A converged host answers
one dpkg-query instead; only a host that lacks a package runs apt.
"""

from __future__ import annotations

import shlex

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# What is passed on to ansible.builtin.apt when something is missing.
APT_OPTIONS = ("update_cache", "cache_valid_time", "install_recommends")


def missing_packages(names, dpkg_output):
    """The names of ``names`` that dpkg-query's ``${db:Status-Abbrev}${binary:Package}`` lines do not show installed."""
    installed = set()
    for line in dpkg_output.splitlines():
        status, _, package = line.partition(" ")
        # "ii " is installed and configured; a multi-arch package is named "name:arch".
        if status == "ii":
            installed.add(package.strip().split(":")[0])
    return [name for name in names if name not in installed]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("name", *APT_OPTIONS))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        names = self._task.args.get("name")
        names = [names] if isinstance(names, str) else list(names or [])
        if not names or not all(isinstance(n, str) and n for n in names):
            raise AnsibleActionFail(f"pyfleet_packages: name must be a package name or a list of them, not {names!r}")
        # Read-only, so it runs in check mode too; rc 1 just means some package is unknown to dpkg.
        query = self._low_level_execute_command(
            "dpkg-query -W -f='${db:Status-Abbrev}${binary:Package}\\n' " + " ".join(shlex.quote(n) for n in names),
            sudoable=False,
        )
        missing = missing_packages(names, query.get("stdout", ""))
        if not missing:
            return dict(result, changed=False, missing=[])
        args = {"name": names, "state": "present"}
        args.update({key: self._task.args[key] for key in APT_OPTIONS if key in self._task.args})
        result.update(self._execute_module(module_name="ansible.builtin.apt", module_args=args, task_vars=task_vars))
        result["missing"] = missing
        return result
