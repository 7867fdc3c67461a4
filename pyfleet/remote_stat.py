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

LEAN = {"get_mime": False, "get_attributes": False}


def lean_stat_args(module_name, module_args):
    """``module_args`` with stat's unread extras off, when ``module_name`` is stat."""
    if module_name in ("ansible.legacy.stat", "ansible.builtin.stat", "stat"):
        return {**module_args, **LEAN}
    return module_args


def install():
    from ansible.plugins.action import ActionBase

    remote_stat = ActionBase._execute_remote_stat
    if getattr(remote_stat, "pyfleet_lean", False):
        return

    def _execute_remote_stat(self, *args, **kwargs):
        own = vars(self).get("_execute_module")  # none, unless someone set one on this object
        execute = self._execute_module  # Ansible's, or Mitogen's override of it

        def execute_lean(*positional, **module_kwargs):
            if "module_name" in module_kwargs and "module_args" in module_kwargs:
                module_kwargs["module_args"] = lean_stat_args(
                    module_kwargs["module_name"], module_kwargs["module_args"]
                )
            return execute(*positional, **module_kwargs)

        self._execute_module = execute_lean  # this action object only, for this one call
        try:
            return remote_stat(self, *args, **kwargs)
        finally:
            if own is None:
                del self._execute_module
            else:
                self._execute_module = own

    _execute_remote_stat.pyfleet_lean = True
    ActionBase._execute_remote_stat = _execute_remote_stat
