"""pyfleet.warm: the filter and test tables are built in the main process, so forked workers inherit them."""

import os
import subprocess
import sys
from types import SimpleNamespace

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


class NewInterpreter:
    """What ContextService._connect hands _send_module_forwards: a Mitogen context."""

    def __init__(self):
        self.sent = []

    def call_no_reply(self, fn, *args):
        self.sent.append((fn, *args))


def test_each_new_host_interpreter_runs_the_code_cache_before_ansible_mitogens_set_up(monkeypatch, tmp_path):
    import ansible_mitogen.runner
    import mitogen.core
    from ansible_mitogen.services import ContextService

    monkeypatch.setattr(ContextService, "_send_module_forwards", lambda self, context: context.sent.append("forwards"))
    warm.cache_host_compiles()
    warm.cache_host_compiles()  # once per process: a second call does not wrap it again
    context = NewInterpreter()
    ContextService._send_module_forwards(None, context)
    assert context.sent[0] == "forwards" and len(context.sent) == 2
    fn, source, namespace = context.sent[1]
    assert fn is exec  # as text: ansible_mitogen serves hosts only the packages it names
    # What the host does with it: the cache in its user's home, Mitogen's compiles through it.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(mitogen.core, "compile", compile, raising=False)
    monkeypatch.setattr(ansible_mitogen.runner, "compile", compile, raising=False)
    exec(source, namespace)
    assert mitogen.core.compile is namespace["cached_compile"]
    assert list(tmp_path.glob(".cache/pyfleet/code-*"))


PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.template: {src: a.j2, dest: /tmp/a}
    - block:
        - ansible.builtin.command: "true"
      rescue:
        - community.crypto.openssl_privatekey_pipe: {}
    - community.crypto.openssl_privatekey: {path: /tmp/key}
"""

WARM_ACTIONS = """
import sys
from types import SimpleNamespace
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.playbook import Playbook
from ansible.plugins.loader import init_plugin_loader
from ansible.vars.manager import VariableManager

init_plugin_loader()
loader = DataLoader()
manager = VariableManager(loader=loader, inventory=InventoryManager(loader=loader, sources="localhost,"))
play = Playbook.load(sys.argv[1], variable_manager=manager, loader=loader).get_plays()[0]
from pyfleet import warm

import ansible_mitogen.planner
from types import SimpleNamespace

before = [m for m in sys.modules if ".plugins.action." in m]
warm.warm_action_plugins(play.compile())
print(" ".join(before))
print(" ".join(sorted(m for m in sys.modules if ".plugins.action." in m)))
mitogens = SimpleNamespace(_extra_sys_paths=set())
ansible_mitogen.planner._load_collections(mitogens)  # Mitogen's own, unpatched here
print(len(warm._collection_dirs or []), set(warm._collection_dirs or []) == mitogens._extra_sys_paths)
"""


def test_a_plays_action_plugins_are_imported_before_the_workers_fork(tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    run = subprocess.run(
        [sys.executable, "-c", WARM_ACTIONS, str(playbook)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    before, after, collections = run.stdout.splitlines()
    # The tasks' own, by the names workers load them under (FQCN: the builtin collection's),
    # the copy action a template runs, and `normal` for a module without an action plugin.
    wanted = [f"ansible_collections.ansible.builtin.plugins.action.{name}" for name in ("template", "command")]
    wanted += ["ansible.plugins.action.copy", "ansible.plugins.action.normal"]
    wanted.append("ansible_collections.community.crypto.plugins.action.openssl_privatekey_pipe")
    assert not set(wanted) & set(before.split()), before
    assert set(wanted) <= set(after.split()), after
    # A collection's module: the installed collections listed now, as Mitogen lists them.
    count, same = collections.split()
    assert int(count) > 10 and same == "True", collections


def test_mitogen_lists_the_installed_collections_once_per_process(monkeypatch):
    import ansible.collections.list as listing
    import ansible_mitogen.planner as planner

    calls = []

    def listed():
        calls.append(1)
        return iter([b"/c/ansible_collections/ns/one", b"/c/ansible_collections/ns/two"])

    monkeypatch.setattr(listing, "list_collection_dirs", listed)
    monkeypatch.setattr(warm, "_collection_dirs", None)
    monkeypatch.setattr(planner, "_load_collections", planner._load_collections)  # put back after the test
    warm.list_collections_once()
    first, second = SimpleNamespace(_extra_sys_paths=set()), SimpleNamespace(_extra_sys_paths=set())
    planner._load_collections(first)
    planner._load_collections(second)
    assert (
        first._extra_sys_paths
        == second._extra_sys_paths
        == {"/c/ansible_collections/ns/one", "/c/ansible_collections/ns/two"}
    )
    assert calls == [1]


LOOKUPS = """
from ansible.plugins.loader import Jinja2Loader, filter_loader
from ansible.template import Templar, trust_as_template
from pyfleet.warm import remember_jinja_plugin_lookups, warm_plugin_caches

remember_jinja_plugin_lookups()
warm_plugin_caches()  # Jinja's own names looked up here, before a worker would fork
searches = []
search = Jinja2Loader.get_with_context
def counted(self, name, *args, **kwargs):
    searches.append(name)
    return search(self, name, *args, **kwargs)
Jinja2Loader.get_with_context = counted
text = trust_as_template("{{ names | map('upper') | join(',') | default('x') }} {{ 1 | to_json }}")
for _ in range(3):
    assert Templar(variables={"names": ["a", "b"]}).template(text) == "A,B 1"
assert searches == ["to_json"], searches  # Ansible's own: once per process, Jinja's: none after the warm-up
for _ in range(2):
    try:
        filter_loader.get("no_such_filter")
    except KeyError:
        pass  # not found, as without the memory: Jinja's table is asked next
    else:
        raise AssertionError("found a filter that does not exist")
assert searches == ["to_json", "no_such_filter"], searches
filter_loader._clear_caches()
assert "_pyfleet_lookups" not in vars(filter_loader)  # a new plugin path: looked up again
"""


def test_jinjas_own_filters_are_looked_up_once_not_searched_for_on_every_use():
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PYTHONPATH=str(ROOT))
    run = subprocess.run(
        [sys.executable, "-c", LOOKUPS], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
