"""Runs on the managed hosts: Mitogen's compiled modules kept between runs.

Mitogen sends each interpreter it starts on a host (one for the SSH user, one
more through sudo) the source of every module it imports, and the interpreter
compiles it: about 1 MB of ansible-core's module_utils, Mitogen and
ansible_mitogen per interpreter, on every run, because a module that arrives as
source has no .pyc. On the lab that was most of a host's CPU at first contact
(0.2 s of the 0.26 s an `import ansible.module_utils.basic` takes without
.pyc files goes to compiling).

install() makes mitogen.core's importer keep the code objects it compiles, as
Python keeps .pyc files (the runner's compiles of Ansible modules and of
collections' module_utils too): in ~/.cache/pyfleet/code-<bytecode magic>/ of the
interpreter's user, a file per (file name, source) hash, written atomically.
The same source in the same Python gives the same code, so a hit is exact; a
changed module has another hash. Anything unusual (a directory that is not the
user's own and private, an unreadable entry, other compile flags) compiles as
before.

Standard library only: this module is sent to the hosts (Debian 12 and 13 run 3.11 and 3.13).
"""

import contextlib
import hashlib
import importlib.util
import marshal
import os

_builtin_compile = compile
_directory = None
_MAX_ENTRIES = 4000  # a bound on what ansible-core and Mitogen upgrades leave behind


def private_directory(path):
    """``path``, made if missing; None when it is not this user's own and private or cannot be made.

    Emptied once it holds more than _MAX_ENTRIES entries: whatever filled it is
    compiled again on the next run.
    """
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        status = os.stat(path)
        if status.st_uid != os.geteuid() or status.st_mode & 0o077:
            return None
        if len(os.listdir(path)) > _MAX_ENTRIES:
            for name in os.listdir(path):
                os.unlink(os.path.join(path, name))
    except OSError:
        return None
    return path


def _private_directory():
    """This interpreter's cache directory, or None when it cannot be trusted or made."""
    return private_directory(
        os.path.join(os.path.expanduser("~"), ".cache", "pyfleet", "code-" + importlib.util.MAGIC_NUMBER.hex())
    )


def read_entry(path):
    """The bytes kept at ``path``, or None when there are none."""
    try:
        with open(path, "rb") as entry:
            return entry.read()
    except OSError:
        return None


def write_entry(path, data):
    """Keep ``data`` at ``path``, whole or not at all (a full or read-only disk leaves nothing)."""
    partial = f"{path}.{os.getpid()}.tmp"
    try:
        with open(partial, "wb") as entry:
            entry.write(data)
        os.replace(partial, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(partial)


def cached_compile(source, filename, mode, flags=0, dont_inherit=False, *args, **kwargs):
    """compile(), answered from the cache for the module code Mitogen's importer compiles."""
    if _directory is None or mode != "exec" or flags or not dont_inherit or args or kwargs:
        return _builtin_compile(source, filename, mode, flags, dont_inherit, *args, **kwargs)
    text = source if isinstance(source, bytes) else source.encode("utf-8", "surrogateescape")
    key = hashlib.sha256(filename.encode("utf-8", "surrogateescape") + b"\0" + text).hexdigest()
    path = os.path.join(_directory, key)
    kept = read_entry(path)
    if kept is not None:
        try:
            return marshal.loads(kept)
        except (ValueError, EOFError, TypeError):
            pass  # damaged: compile it again
    code = _builtin_compile(source, filename, mode, flags, dont_inherit)
    write_entry(path, marshal.dumps(code))
    return code


def install():
    """Route the compiles of Mitogen's importer and ansible_mitogen's module runner through the cache.

    Called first in each new interpreter. The runner (and with it ansible-core's
    module_utils, about 60 modules) is not imported here: the SSH login interpreter
    of a `become` run is only a hop to sudo and never imports it
    (pyfleet.mitogen_hops). It gets the cache when it is imported.
    """
    global _directory
    import sys

    import mitogen.core  # already loaded: it is the interpreter's bootstrap

    _directory = _private_directory()
    mitogen.core.compile = cached_compile  # the module-global name its importer calls
    runner = sys.modules.get(RUNNER)
    if runner is not None:
        runner.compile = cached_compile
        return
    for importer in sys.meta_path:
        if isinstance(importer, mitogen.core.Importer):
            importer.exec_module = _compiling_runner_through_cache(importer.exec_module)


RUNNER = "ansible_mitogen.runner"


def _compiling_runner_through_cache(exec_module):
    """Mitogen's Importer.exec_module, which gives the runner module cached_compile before its code runs."""

    def exec_module_with_cache(module):
        if module.__spec__.name == RUNNER:
            module.compile = cached_compile  # the runner's compile() of Ansible modules and collections' module_utils
        exec_module(module)

    return exec_module_with_cache
