"""A copied or templated file that is already right costs one module run on the host, not two.

When the content on the host matches, ansible-core's copy action (which template
runs) still runs the file module to set the mode, owner and group the task asks
for, although the stat it ran just before has already read them. A no-op
`site.yml` does that for every template and copy on every host: about ten
module runs per host, each a round trip and a module run in the host's
interpreter.

install() wraps the copy action's _copy_file: the stat it runs is kept, and the
file module call that follows a matching checksum is answered from it when the
file module would change nothing (settled_result). Anything the stat cannot
prove unchanged (a link, attributes, SELinux fields, times, a symbolic mode, a
name stat could not resolve) runs the file module as before, which reports or
makes the change itself.
"""

import stat as stat_flags

from pyfleet.remote_stat import for_this_call

# What the copy action passes the file module in its no-change branch, besides the
# path, the file's mode, owner and group: none of these can change a regular file
# that already has them (follow only matters for a link, which settled_result refuses).
_INERT = {"_original_basename", "recurse", "state", "follow", "unsafe_writes", "force"}
_COMPARED = {"mode", "owner", "group"}
_UNSET_IS_INERT = {
    "seuser",
    "serole",
    "setype",
    "selevel",
    "attributes",
    "access_time",
    "modification_time",
    "access_time_format",
    "modification_time_format",
}


def _mode(value):
    """A numeric mode as the file module reads it (an int, or octal digits), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        try:
            return int(value, 8)
        except ValueError:
            return None  # digits 8 or 9: the file module reports that itself
    return None


def _same_account(wanted, number, name):
    """The file module's owner/group test: a number is compared as an id, a name as the name."""
    wanted = str(wanted)
    if wanted.isdigit():
        return number is not None and int(wanted) == number
    return name is not None and wanted == name


def settled_result(module_args, stat):
    """The file module's own no-change result for ``module_args``, or None when it must run.

    ``stat`` is the stat module's answer for the same path, read by the same user.
    """
    path = module_args.get("dest", module_args.get("path"))
    if not stat or not stat.get("exists") or not stat.get("isreg") or stat.get("islnk"):
        return None
    if path is None or stat.get("path") != path or module_args.get("state") != "file":
        return None
    if module_args.get("recurse") or module_args.get("_diff_peek") is not None:
        return None
    for key, value in module_args.items():
        if key in ("dest", "path") or key in _INERT or key in _COMPARED:
            continue
        if key in _UNSET_IS_INERT and value in (None, "preserve"):
            continue
        return None
    mode = module_args.get("mode")
    if mode is not None and _mode(mode) != int(stat["mode"], 8):
        return None
    owner, group = module_args.get("owner"), module_args.get("group")
    if owner is not None and not _same_account(owner, stat.get("uid"), stat.get("pw_name")):
        return None
    if group is not None and not _same_account(group, stat.get("gid"), stat.get("gr_name")):
        return None
    result = {
        "changed": False,
        "path": path,
        "diff": {"before": {"path": path}, "after": {"path": path}},
        "state": "file",
        "mode": f"0{stat_flags.S_IMODE(int(stat['mode'], 8)):03o}",
        "uid": stat.get("uid"),
        "gid": stat.get("gid"),
        "size": stat.get("size"),
    }
    for field, key in (("owner", "pw_name"), ("group", "gr_name")):
        if stat.get(key) is not None:
            result[field] = stat[key]
    return result


def install():
    """Wrap ansible-core's copy action (once per process, in the main one before workers fork)."""
    from ansible.plugins.action.copy import ActionModule

    copy_file = ActionModule._copy_file
    if getattr(copy_file, "pyfleet_settled", False):
        return

    def _copy_file(self, *args, **kwargs):
        seen = {}
        remote_stat = self._execute_remote_stat
        execute = self._execute_module

        def remote_stat_kept(path, *stat_args, **stat_kwargs):
            answer = remote_stat(path, *stat_args, **stat_kwargs)
            seen[path] = answer
            return answer

        def execute_unless_settled(*positional, **module_kwargs):
            if not positional and module_kwargs.get("module_name") == "ansible.legacy.file":
                module_args = module_kwargs.get("module_args") or {}
                settled = settled_result(module_args, seen.get(module_args.get("dest")))
                if settled is not None:
                    return settled
            return execute(*positional, **module_kwargs)

        with for_this_call(self, _execute_remote_stat=remote_stat_kept, _execute_module=execute_unless_settled):
            return copy_file(self, *args, **kwargs)

    _copy_file.pyfleet_settled = True
    ActionModule._copy_file = _copy_file
