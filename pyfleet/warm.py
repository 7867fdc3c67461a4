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

The workers' Jinja compiles are kept the same way on the controller, by
pyfleet.template_cache (installed beside these, before the first worker forks).
"""

import json
import os
import threading
from pathlib import Path

from ansible.plugins.loader import filter_loader, test_loader

from pyfleet.shell import ROOT

SCANS = ROOT / ".cache" / "mitogen-scans.json"


def warm_plugin_caches():
    """Build the filter and test tables now (a no-op when they are built)."""
    for loader in (filter_loader, test_loader):
        # Ansible's own (private) method, the one call that fills the table a worker
        # would build; tests/unit/test_warm.py fails when an Ansible upgrade drops it.
        ensure = getattr(loader, "_ensure_non_collection_wrappers", None)
        if ensure:
            ensure()


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
            partial = store.with_name(f"{store.name}.{os.getpid()}")
            partial.write_text(json.dumps(kept))
            os.replace(partial, store)  # whole or not at all: runs side by side share the file
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
