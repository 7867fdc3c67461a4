"""The module code Mitogen's multiplexer sends to hosts, prepared once and kept between runs.

Before Mitogen's multiplexer sends a host a Python module (ansible_mitogen,
ansible-core's module_utils, the collections' module_utils), it prepares it:
strips comments and docstrings where the module allows it (a pass of Python's
tokenizer), compresses it with zlib at level 9, lists the package's submodules
and finds every module it imports, recursively. It keeps that per process only,
so every run prepared the same 175 modules again: 0.47 s of the multiplexer's
CPU per no-op `site.yml` on the lab, much of it while the first contact with the
hosts waits for it.

pyfleet keeps each prepared module in `.cache/mitogen-modules-<versions>/` (a
private directory, one file per module name) with the times and sizes of the
files and directories it was made from: the module's file, its package's
directory, and the file and directory of every module it was found to import.
A kept one is used while those all match; a changed, added or removed file
prepares the module again. What Mitogen refuses to send (the standard library,
modules without source) is decided by Mitogen each time, as before.
"""

import hashlib
import importlib.util
import marshal
import os

import mitogen
import mitogen.core
import mitogen.master

from pyfleet.remote_code_cache import private_directory, read_entry, write_entry
from pyfleet.shell import ROOT

_FORMAT = 1  # raise when the entries' layout changes
_VERSIONS = hashlib.sha256(repr((_FORMAT, importlib.util.MAGIC_NUMBER, mitogen.__version__)).encode()).hexdigest()[:12]
DIRECTORY = ROOT / ".cache" / f"mitogen-modules-{_VERSIONS}"


def _stamps(paths):
    """(path, mtime_ns, size) of each path, in order; OSError when one is gone."""
    stamps = []
    for path in paths:
        status = os.stat(path)
        stamps.append((path, status.st_mtime_ns, status.st_size))
    return stamps


def _sources(responder, fullname, prepared):
    """The files and directories ``prepared`` (Mitogen's tuple for ``fullname``) was made from."""
    _, _, path, _, related = prepared
    paths = [path, os.path.dirname(path)]
    for name in related:
        related_path = responder._finder.get_module_source(name)[0]  # cached by Mitogen's finder
        if related_path and os.path.isfile(related_path):
            paths += [related_path, os.path.dirname(related_path)]
    return list(dict.fromkeys(paths))


def _kept_build_tuple(build_tuple, directory):
    def build_tuple_(self, fullname):
        if fullname in self._cache:
            return self._cache[fullname]
        self.policy.denied_raise(fullname)  # as Mitogen's own: a refused name is refused first
        entry_path = os.path.join(directory, hashlib.sha256(fullname.encode()).hexdigest())
        kept = read_entry(entry_path)
        if kept is not None:
            try:
                stamps, (name, pkg_present, path, compressed, related) = marshal.loads(kept)
                if name == fullname and _stamps(path for path, _, _ in stamps) == [tuple(s) for s in stamps]:
                    prepared = (name, pkg_present, path, mitogen.core.Blob(compressed), related)
                    self._cache[fullname] = prepared
                    return prepared
            except (OSError, ValueError, EOFError, TypeError):
                pass  # a file is gone, or a damaged entry: prepare it again
        prepared = build_tuple(self, fullname)
        name, pkg_present, path, compressed, related = prepared
        if path and isinstance(compressed, bytes):  # a module Mitogen sends, not a refusal
            try:
                stamps = _stamps(_sources(self, fullname, prepared))
            except OSError:
                return prepared
            plain = (str(name), pkg_present and [str(n) for n in pkg_present], str(path), bytes(compressed))
            write_entry(entry_path, marshal.dumps((stamps, (*plain, [str(n) for n in related]))))
        return prepared

    build_tuple_.pyfleet_kept = True
    return build_tuple_


def install(directory=DIRECTORY):
    """Keep the multiplexer's prepared modules in ``directory`` (before the multiplexer forks)."""
    responder = mitogen.master.ModuleResponder
    if getattr(responder._build_tuple, "pyfleet_kept", False):
        return
    kept_in = private_directory(str(directory))
    if kept_in is not None:
        responder._build_tuple = _kept_build_tuple(responder._build_tuple, kept_in)
