"""pyfleet_accounts: groups and users, read with one `getent` call when they already are as asked.

A loop over ansible.builtin.group and ansible.builtin.user costs a module run per
item and host on every converge, and the user module runs `usermod --help` twice
to learn what it may ask (the app role's three such tasks: about 2 s of a
24-host no-op). This action takes the same arguments as those modules, a list
of each, reads the accounts with one `getent group ...; getent passwd ...`,
and runs the module only for an entry that differs (or asks for something the
check does not read), groups before users, with that entry's own arguments.
"""

from __future__ import annotations

import shlex

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

# What the check reads. `system` and `create_home` only matter when the module creates
# the account: an existing one is left as it is by the module too.
GROUP_ARGS = {"name", "system", "state"}
USER_ARGS = {"name", "group", "groups", "append", "home", "shell", "system", "create_home", "state"}


def parse_getent(output):
    """``getent group ...`` and ``getent passwd ...`` lines, separated by a line ``==``: (groups, users)."""
    groups, users = {}, {}
    table = groups
    for line in output.splitlines():
        if line.strip() == "==":
            table = users
            continue
        fields = line.split(":")
        if table is groups and len(fields) == 4:
            groups[fields[0]] = {"gid": fields[2], "members": [m for m in fields[3].split(",") if m]}
        elif table is users and len(fields) == 7:
            users[fields[0]] = {"uid": fields[2], "gid": fields[3], "home": fields[5], "shell": fields[6]}
    return groups, users


def _present(args):
    return args.get("state", "present") == "present"


def group_settled(args, groups):
    """True when the group module would change nothing for ``args``."""
    return not set(args) - GROUP_ARGS and _present(args) and args.get("name") in groups


def _group_id(name_or_id, groups):
    value = str(name_or_id)
    if value.isdigit():
        return value
    return groups.get(value, {}).get("gid")


def user_settled(args, groups, users):
    """True when the user module would change nothing for ``args`` (the subset USER_ARGS reads)."""
    if set(args) - USER_ARGS or not _present(args):
        return False
    user = users.get(args.get("name"))
    if user is None:
        return False
    if args.get("group") is not None and _group_id(args["group"], groups) != user["gid"]:
        return False
    if args.get("home") is not None and args["home"] != user["home"]:
        return False
    if args.get("shell") is not None and args["shell"] != user["shell"]:
        return False
    wanted = args.get("groups")
    if wanted is not None:
        if not boolean(args.get("append", False), strict=False):
            return False  # the exact set: the module's to compare
        wanted = [g.strip() for g in wanted.split(",")] if isinstance(wanted, str) else list(wanted)
        if not all(args["name"] in groups.get(g, {}).get("members", ()) for g in wanted if g):
            return False
    return True


def names(entries, *keys):
    """Every account name ``entries`` mention under ``keys`` (for the one getent call)."""
    found = []
    for entry in entries:
        for key in keys:
            value = entry.get(key)
            values = value.split(",") if isinstance(value, str) else value or []
            found.extend(str(v).strip() for v in values if str(v).strip() and not str(v).strip().isdigit())
    return list(dict.fromkeys(found))


def _entries(args, key):
    entries = args.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("name") for e in entries):
        raise AnsibleActionFail(
            f"pyfleet_accounts: {key} must be a list of {key[:-1]} module arguments, each with a name"
        )
    return entries


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        unknown = set(self._task.args) - {"groups", "users"}
        if unknown:
            raise AnsibleActionFail(f"pyfleet_accounts: unknown argument(s) {', '.join(sorted(unknown))}")
        wanted_groups, wanted_users = _entries(self._task.args, "groups"), _entries(self._task.args, "users")
        group_names = list(dict.fromkeys(names(wanted_groups, "name") + names(wanted_users, "group", "groups")))
        user_names = names(wanted_users, "name")
        command = "; ".join(
            [
                *(["getent group " + " ".join(map(shlex.quote, group_names))] if group_names else []),
                "echo ==",
                *(["getent passwd " + " ".join(map(shlex.quote, user_names))] if user_names else []),
                "true",  # getent exits 2 when a name is missing: that is an answer, not an error
            ]
        )
        # Read-only: also right in check mode.
        read = self._low_level_execute_command(command, sudoable=False)
        groups, users = parse_getent(read.get("stdout", "")) if read.get("rc") == 0 else ({}, {})
        runs = [("ansible.legacy.group", e) for e in wanted_groups if not group_settled(e, groups)]
        runs += [("ansible.legacy.user", e) for e in wanted_users if not user_settled(e, groups, users)]
        results = []
        for module, module_args in runs:
            done = self._execute_module(module_name=module, module_args=dict(module_args), task_vars=task_vars)
            results.append(done)
            if done.get("failed"):
                result.update(failed=True, msg=f"{module} {module_args['name']}: {done.get('msg', 'failed')}")
                break
        result.update(
            changed=any(r.get("changed") for r in results),
            results=results,
            checked_only=not runs,
        )
        return result
