"""Work ansible-playbook would repeat, done once: used by pyfleet's strategy plugins.

1. The Jinja filter and test tables. Ansible forks a worker process per task and
   host. The first filter a worker's template names makes it import every filter
   and test plugin file (Ansible's, the collections' and pyfleet's, which import
   pyfleet.plan) to build its table of short names; the worker exits and the next
   one does it again. A profile of a no-op `site.yml` on the lab showed that as
   about 40 % of the workers' CPU. Built in the main process before a play's
   tasks fork, the table is inherited by every worker (fork copies it).
2. Mitogen's module scans. Before a module's first run, Mitogen finds the
   module_utils it imports by compiling the module and each of those files (about
   60 ms per module, 1.2 s per `site.yml` run, in the main process). The answer
   only changes when one of those files or directories does, so it is kept in
   .cache/mitogen-scans.json and reused while their times and sizes match.
3. The hosts' compiles. Each interpreter Mitogen starts on a host compiles the
   source of every module it is sent, on every run; pyfleet.remote_code_cache
   keeps the compiled code on the host, as .pyc files would be (see there).

4. The installed collections, listed by Mitogen before each collection module's
   run in every worker, and the action plugins every worker imports: done once
   (list_collections_once, warm_action_plugins).

The workers' Jinja compiles are kept on the controller by pyfleet.template_cache, the
modules Mitogen's multiplexer prepares for the hosts by pyfleet.module_tuples.
prepare() and warm_play() are what pyfleet's strategy plugins call.
"""

import contextlib
import importlib
import json
import os
import threading
from pathlib import Path

from ansible.plugins.loader import action_loader, filter_loader, module_loader, test_loader

from pyfleet import mitogen_hops, module_tuples, remote_stat, settled_files, template_cache
from pyfleet.remote_code_cache import write_entry
from pyfleet.shell import ROOT

SCANS = ROOT / ".cache" / "mitogen-scans.json"


def warm_plugin_caches():
    """Build the filter and test tables now (a no-op when they are built), and look up Jinja's own names."""
    import jinja2.defaults

    for loader, jinja_names in (
        (filter_loader, jinja2.defaults.DEFAULT_FILTERS),
        (test_loader, jinja2.defaults.DEFAULT_TESTS),
    ):
        # Ansible's own (private) method, the one call that fills the table a worker
        # would build; tests/unit/test_warm.py fails when an Ansible upgrade drops it.
        ensure = getattr(loader, "_ensure_non_collection_wrappers", None)
        if ensure:
            ensure()
        for name in jinja_names:  # remembered (remember_jinja_plugin_lookups): every worker inherits the answers
            with contextlib.suppress(Exception):
                loader.get(name)


def remember_jinja_plugin_lookups():
    """Each filter and test name looked up once per process, also the names Ansible has no plugin for.

    Jinja's own filters and tests (map, default, join, ...) are no Ansible plugin:
    each use made the worker's loader search for one (ansible.builtin.<name>, its
    routing, every plugin path: about 54,000 stat calls in a no-op `site.yml` on
    24 hosts) before Ansible fell back to Jinja's. The answer, found or not, is
    kept on the loader until Ansible clears its caches (a new plugin path).
    """
    from ansible.plugins.loader import Jinja2Loader

    get, clear = Jinja2Loader.get, Jinja2Loader._clear_caches
    if getattr(get, "pyfleet_remembered", False):
        return
    missing = object()

    def get_remembered(self, name, *args, **kwargs):
        if args or kwargs:
            return get(self, name, *args, **kwargs)
        lookups = self.__dict__.setdefault("_pyfleet_lookups", {})
        found = lookups.get(name, missing)
        if found is missing:
            try:
                found = get(self, name)
            except KeyError as exc:
                found = exc
            lookups[name] = found
        if isinstance(found, KeyError):
            raise KeyError(*found.args)
        return found

    def clear_caches(self):
        self.__dict__.pop("_pyfleet_lookups", None)
        clear(self)

    get_remembered.pyfleet_remembered = True
    Jinja2Loader.get, Jinja2Loader._clear_caches = get_remembered, clear_caches


# What workers import on their first module result and their first template
# (Ansible's template action runs its copy action), whatever the play's tasks are.
_WORKER_IMPORTS = ("ansible.module_utils._internal._json._profiles._module_legacy_m2c",)
_ALWAYS_ACTIONS = ("ansible.legacy.normal", "ansible.legacy.copy")


def _tasks(blocks):
    """Every task in ``blocks`` (a play's compiled blocks), nested blocks opened."""
    for block in blocks:
        for task in (*block.block, *block.rescue, *block.always):
            if hasattr(task, "block"):
                yield from _tasks([task])
            else:
                yield task


def _action_name(task):
    """(action plugin, collections, module path) a worker runs ``task`` with (TaskExecutor._get_action_handler_with_module_context)."""
    found = module_loader.find_plugin_with_context(task.action, collection_list=task.collections)
    path = found.plugin_resolved_path if found.resolved else None
    if found.resolved and found.action_plugin:
        return found.action_plugin, task.collections, path
    if action_loader.has_plugin(task.action, collection_list=task.collections):
        return task.action, task.collections, path
    return "ansible.legacy.normal", None, path


_collection_dirs = None


def _installed_collection_dirs():
    """The installed collections' directories, listed once per process (the main one, before workers fork)."""
    global _collection_dirs
    if _collection_dirs is None:
        from ansible.collections.list import list_collection_dirs

        _collection_dirs = [path.decode("utf-8") for path in list_collection_dirs()]
    return _collection_dirs


def _load_collections(invocation):
    """ansible_mitogen.planner._load_collections, from the list made once."""
    invocation._extra_sys_paths.update(_installed_collection_dirs())


def list_collections_once():
    """Have Mitogen's planner list the installed collections once per run, not once per task (once per process).

    Before the first run of a collection's module in a worker, Mitogen's planner lists
    every installed collection (it imports each namespace package): about 70 ms per
    task with the community package's hundred collections, in every worker again.
    """
    import ansible_mitogen.planner as planner

    planner._load_collections = _load_collections


def warm_action_plugins(blocks):
    """Import the action plugins of a play's tasks now, before its workers fork.

    Each worker imports the action plugin of its task, and its first module
    result and template import a few modules more: every worker again, since each
    is a new process. Imported here, they are inherited by every worker; so is the
    list of installed collections (list_collections_once) when a task runs a
    collection's module. Best effort: a plugin that fails to load here is left to
    the worker, which reports it as Ansible does.
    """
    for name in _WORKER_IMPORTS:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    names = {(name, None) for name in _ALWAYS_ACTIONS}
    for task in _tasks(blocks):
        with contextlib.suppress(Exception):
            name, collections, module_path = _action_name(task)
            names.add((name, tuple(collections) if collections else None))
            if "ansible_collections" in (module_path or ""):
                _installed_collection_dirs()  # for list_collections_once, before the workers fork
    for name, collections in names:
        with contextlib.suppress(Exception):
            action_loader.get(name, class_only=True, collection_list=list(collections) if collections else None)


def _stamp(paths):
    """[path, mtime_ns, size] of each path: what a kept scan is checked against."""
    stamps = []
    for path in paths:
        st = os.stat(path)
        stamps.append([path, st.st_mtime_ns, st.st_size])
    return stamps


def remembered(scan, store):
    """``scan`` (module_finder.scan's signature) with its answers kept in the JSON file ``store``."""
    lock = threading.Lock()
    kept = {}
    if store.exists():
        try:
            kept = json.loads(store.read_text())
        except ValueError:
            kept = {}  # a half-written or foreign file: scan again

    def cached(module_name, module_path, search_path):
        key = json.dumps([module_name, module_path, list(search_path)])
        with lock:
            entry = kept.get(key)
            try:
                if entry and _stamp(p for p, _, _ in entry["stamps"]) == entry["stamps"]:
                    return [tuple(row) for row in entry["result"]]
            except OSError:
                pass  # a file or directory is gone: scan again
            result = scan(module_name, module_path, search_path)
            files = [module_path, *(path for _, path, _ in result), *(d for d in search_path if os.path.isdir(d))]
            kept[key] = {"result": [list(row) for row in result], "stamps": _stamp(files)}
            store.parent.mkdir(parents=True, exist_ok=True)
            write_entry(str(store), json.dumps(kept).encode())  # whole or not at all: runs side by side share it
            return result

    cached.pyfleet_remembered = True
    return cached


def remember_module_scans():
    """Make Mitogen's module scans go through ``remembered`` (once per process)."""
    import ansible_mitogen.module_finder as finder

    if not getattr(finder.scan, "pyfleet_remembered", False):
        finder.scan = remembered(finder.scan, SCANS)


def cache_host_compiles():
    """Have every new Mitogen interpreter on a host run pyfleet.remote_code_cache (once per process).

    Patched before Mitogen's multiplexer process forks from ansible-playbook: the
    multiplexer connects the hosts, and sends each new interpreter the module's
    text to run just before ansible_mitogen's own set-up there (messages run in
    order). As text for exec: ansible_mitogen serves a host only the packages it
    names, and pyfleet is not one of them.
    """
    from ansible_mitogen.services import ContextService

    import pyfleet.remote_code_cache

    forward = ContextService._send_module_forwards
    if getattr(forward, "pyfleet_cached", False):
        return
    source = Path(pyfleet.remote_code_cache.__file__).read_text() + "\ninstall()\n"

    def send_module_forwards(self, context):
        forward(self, context)
        context.call_no_reply(exec, source, {"__name__": "pyfleet_remote_code_cache"})

    send_module_forwards.pyfleet_cached = True
    ContextService._send_module_forwards = send_module_forwards


def prepare():
    """Set up once, in the main process where the strategy loads: before Mitogen's multiplexer and any worker fork."""
    remember_module_scans()  # Mitogen's module scans run in the main process
    cache_host_compiles()
    module_tuples.install()  # the multiplexer prepares the modules it sends
    mitogen_hops.install()  # and starts the SSH login interpreters of `become` as hops only
    remote_stat.install()  # copy and template ask stat for what they read, no more
    settled_files.install()  # and skip the file module when that stat shows it would change nothing
    list_collections_once()
    template_cache.install()
    remember_jinja_plugin_lookups()


def warm_play(iterator):
    """Before a play's tasks fork their workers (``iterator``: the play's PlayIterator)."""
    warm_plugin_caches()
    warm_action_plugins(iterator._blocks)
    template_cache.preload()  # the Jinja compiles kept so far, in memory for the workers to inherit
