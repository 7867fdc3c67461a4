"""The stat that Ansible's copy and template actions run on the host, without what they never read.

Before it compares a file, ansible-core's copy action (and template, which runs it)
runs the stat module on the host (ActionBase._execute_remote_stat). stat's defaults
also ask for the file's attributes (a `lsattr` run) and its MIME type (a `file` run,
which loads the magic database, where `file` is installed); the actions read neither
(they use exists, isdir, checksum and the link source). On the lab, a `lsattr` run
cost the host about 3.5 ms of CPU, some 25 times per web host and no-op `site.yml`.

install() has _execute_remote_stat ask stat for neither (once per process, in the
main one before workers fork). A task that sets `attributes:` still gets them set:
the file module reads and changes them itself.
"""

import contextlib

LEAN = {"get_mime": False, "get_attributes": False}


def lean_stat_args(module_name, module_args):
    """``module_args`` with stat's unread extras off, when ``module_name`` is stat."""
    if module_name in ("ansible.legacy.stat", "ansible.builtin.stat", "stat"):
        return {**module_args, **LEAN}
    return module_args


@contextlib.contextmanager
def for_this_call(action, **methods):
    """``methods`` set on this one action object (Ansible's, or Mitogen's, stay on its class), then put back."""
    own = {name: vars(action)[name] for name in methods if name in vars(action)}
    vars(action).update(methods)
    try:
        yield
    finally:
        for name in methods:
            vars(action).pop(name, None)
        vars(action).update(own)


def install():
    from ansible.plugins.action import ActionBase

    remote_stat = ActionBase._execute_remote_stat
    if getattr(remote_stat, "pyfleet_lean", False):
        return

    def _execute_remote_stat(self, *args, **kwargs):
        execute = self._execute_module  # Ansible's, or Mitogen's override of it

        def execute_lean(*positional, **module_kwargs):
            if "module_name" in module_kwargs and "module_args" in module_kwargs:
                module_kwargs["module_args"] = lean_stat_args(
                    module_kwargs["module_name"], module_kwargs["module_args"]
                )
            return execute(*positional, **module_kwargs)

        with for_this_call(self, _execute_module=execute_lean):
            return remote_stat(self, *args, **kwargs)

    _execute_remote_stat.pyfleet_lean = True
    ActionBase._execute_remote_stat = _execute_remote_stat
