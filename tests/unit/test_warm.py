"""pyfleet.warm: the filter and test tables are built in the main process, so forked workers inherit them."""

import os
import subprocess
import sys

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
