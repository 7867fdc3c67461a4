"""pyfleet.warm: the filter and test tables are built in the main process, so forked workers inherit them."""

import os
import subprocess
import sys

from pyfleet import warm
from pyfleet.shell import ROOT

# In a process of its own: the plugin loaders are global state, read from ansible.cfg at import.
CHECK = """
from ansible.plugins.loader import filter_loader, test_loader
from pyfleet.warm import warm_plugin_caches

assert not filter_loader._cached_non_collection_wrappers, "built before the warm-up"
warm_plugin_caches()
filters = filter_loader._cached_non_collection_wrappers
tests = test_loader._cached_non_collection_wrappers
# Ansible's own, a collection-free builtin, and pyfleet's (plugins/filter, named in ansible.cfg).
assert {"to_json", "pyfleet_plan", "pyfleet_sandbox"} <= set(filters), sorted(filters)
assert "version" in tests, sorted(tests)
print(len(filters), len(tests))
"""


def test_the_warm_up_builds_the_tables_a_worker_would_build():
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    run = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    filters, tests = map(int, run.stdout.split())
    assert filters > 50 and tests > 20


def test_a_module_scan_is_remembered_until_a_file_it_read_changes(tmp_path):
    module = tmp_path / "modules" / "thing.py"
    utils = tmp_path / "module_utils"
    module.parent.mkdir()
    utils.mkdir()
    module.write_text("from ansible.module_utils.helper import x\n")
    (utils / "helper.py").write_text("x = 1\n")
    calls = []

    def scan(module_name, module_path, search_path):
        calls.append(module_name)
        return [("ansible.module_utils.helper", str(utils / "helper.py"), False)]

    store = tmp_path / "cache" / "scans.json"
    args = ("ansible_module_thing", str(module), (str(utils),))
    first = warm.remembered(scan, store)(*args)
    assert first == [("ansible.module_utils.helper", str(utils / "helper.py"), False)]
    # A later run (a new process: a new wrapper reading the file) scans nothing.
    assert warm.remembered(scan, store)(*args) == first
    assert calls == ["ansible_module_thing"]
    (utils / "helper.py").write_text("x = 2  # longer\n")
    assert warm.remembered(scan, store)(*args) == first
    assert len(calls) == 2
    module.unlink()
    module.write_text("import os\n")  # the module itself changed
    warm.remembered(scan, store)(*args)
    assert len(calls) == 3
    store.write_text("{half a fi")  # a broken store is scanned over, not an error
    assert warm.remembered(scan, store)(*args) == first
    assert len(calls) == 4
