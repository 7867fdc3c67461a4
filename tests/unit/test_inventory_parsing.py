"""pyfleet.inventory without running Ansible: canned ``ansible-inventory --list`` answers.

ansible-inventory takes seconds a run; these tests give :func:`inventory.load` what
it printed for the lab (tests/unit/fixtures/inventory/lab.json, compared with a
real run by test_inventory.py) and the complaints it wrote for broken
inventories, and check the parsing, the checks and every one-line error.
"""

import inspect
import json
import subprocess
from pathlib import Path

import pytest

from pyfleet import inventory, shell
from pyfleet.errors import PyfleetError
from pyfleet.shell import ROOT, tool

LAB = ROOT / "inventory" / "lab"
LAB_JSON = Path(__file__).parent / "fixtures" / "inventory" / "lab.json"
LAB_HOSTS = ["lb1", "web1", "web2", "broker1", "worker1", "worker2"]

# What ansible-inventory (core 2.19) wrote to stderr for broken inventories; {dir} is the inventory.
INI_STDERR = """[WARNING]: Failed to parse inventory with 'yaml' plugin: YAML parsing failed: Did not find expected <document start>.

Failed to parse inventory with 'yaml' plugin.

[WARNING]: Failed to parse inventory with 'ini' plugin: Failed to parse inventory: Expected key=value host variable assignment, got: ansible_host

Failed to parse inventory with 'ini' plugin.
Origin: {dir}/hosts

[ERROR]: Completely failed to parse inventory source {dir}/hosts
"""
RANGE_STDERR = """[WARNING]: Failed to parse inventory with 'auto' plugin: no root 'plugin' key found, '{dir}/hosts.yml' is not a valid YAML inventory plugin config file

[WARNING]: Failed to parse inventory with 'yaml' plugin: host range must specify end value

Failed to parse inventory with 'yaml' plugin.

[WARNING]: Failed to parse inventory with 'ini' plugin: Failed to parse inventory: Invalid host pattern 'all:' supplied, ending in ':' is not allowed, this character is reserved to provide a port.

[ERROR]: Completely failed to parse inventory source {dir}/hosts.yml
"""
SKIPPED_STDERR = (
    '[WARNING]: Skipping unexpected key ({key}) in group (all), only "vars", "children" and "hosts" are valid\n'
)


class FakeAnsibleInventory:
    """Stands in for ``pyfleet.shell.run`` of ansible-inventory: answers canned output, records the calls."""

    def __init__(self, answer=None, returncode=0, stderr=""):
        self.answer = answer
        self.returncode = returncode
        self.stderr = stderr
        self.calls = []

    def __call__(self, args, **kwargs):
        inspect.signature(shell.run).bind(args, **kwargs)  # called as the real one must be
        self.calls.append((args, kwargs))
        answer = self.answer(args) if callable(self.answer) else self.answer
        return subprocess.CompletedProcess(args, self.returncode, stdout=json.dumps(answer or {}), stderr=self.stderr)


@pytest.fixture
def lab_json():
    return json.loads(LAB_JSON.read_text(encoding="utf-8"))


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """Installs a FakeAnsibleInventory; ``fake(answer, ...)`` sets what it answers.

    No lab is up for these tests (a real lab's connection file would add a source).
    """
    runner = FakeAnsibleInventory()
    monkeypatch.setattr(inventory, "LAB_STATE", tmp_path / "no-lab")

    def install(answer=None, returncode=0, stderr=""):
        runner.answer, runner.returncode, runner.stderr = answer, returncode, stderr
        return runner

    monkeypatch.setattr(inventory, "run", runner)
    return install


def hosts_file(directory, text="all:\n  hosts:\n    web1: {}\n", name="hosts.yml"):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)
    return directory


def put(directory, rel, content):
    f = directory / rel
    f.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content)
    return f


# --- load: what Ansible printed, as hosts and groups ----------------------------------


def test_the_lab_is_six_hosts_with_their_variables_in_their_groups(fake, lab_json):
    runner = fake(lab_json)
    inv = inventory.load("inventory/lab")
    assert inv.path == LAB
    assert list(inv.hosts) == LAB_HOSTS
    assert inv.hosts["web2"]["lab_debian_suite"] == "trixie"
    assert (
        inv.hosts["worker1"]["celery_worker_types"] == lab_json["_meta"]["hostvars"]["worker1"]["celery_worker_types"]
    )
    assert inv.groups == {
        "all": LAB_HOSTS,
        "ungrouped": [],
        "loadbalancers": ["lb1"],
        "web": ["web1", "web2"],
        "brokers": ["broker1"],
        "workers": ["worker1", "worker2"],
    }
    assert inv.groups_of("web1") == ["web"]
    assert inv.name == "lab"
    [(args, kwargs)] = runner.calls
    assert args == [tool("ansible-inventory"), "-i", LAB, "--list"]
    # Ansible must fail, not warn, on a source it cannot parse and on a key given twice.
    assert kwargs["env"] == {
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true",
        "ANSIBLE_DUPLICATE_YAML_DICT_KEY": "error",
    }
    assert kwargs["check"] is False
    assert str(LAB) in kwargs["what"]


def test_nested_groups_collect_their_childrens_hosts_once(fake, tmp_path):
    fake(
        {
            "_meta": {"hostvars": {"web1": {"port": 8000}}},
            "all": {"children": ["ungrouped", "app", "workers"]},
            "ungrouped": {"hosts": ["solo"]},
            "app": {"children": ["web", "workers"], "hosts": ["lead"]},
            "web": {"hosts": ["web1", "both"]},
            "workers": {"hosts": ["both", "w1"]},
        }
    )
    inv = inventory.load(hosts_file(tmp_path))
    assert inv.groups == {
        "all": ["solo", "lead", "web1", "both", "w1"],
        "ungrouped": ["solo"],
        "app": ["lead", "web1", "both", "w1"],
        "web": ["web1", "both"],
        "workers": ["both", "w1"],
    }
    assert inv.hosts == {"solo": {}, "lead": {}, "web1": {"port": 8000}, "both": {}, "w1": {}}
    assert inv.groups_of("both") == ["app", "web", "workers"]


def test_a_group_outside_all_is_a_group_but_its_hosts_are_no_fleet_hosts(fake, tmp_path):
    fake({"all": {"hosts": ["web1"]}, "spare": {"hosts": ["web9"]}})
    inv = inventory.load(hosts_file(tmp_path))
    assert inv.groups == {"all": ["web1"], "spare": ["web9"]}
    assert list(inv.hosts) == ["web1"]


def test_an_inventory_without_hosts_says_where_to_add_them(fake, tmp_path):
    fake({"_meta": {"hostvars": {}}, "all": {"children": ["ungrouped"]}})
    with pytest.raises(PyfleetError) as err:
        inventory.load(hosts_file(tmp_path))
    assert str(err.value) == (
        f"inventory {tmp_path} has no hosts; add hosts under all.children.<group>.hosts in {tmp_path}/hosts.yml"
    )


@pytest.fixture
def lab_with_connection(fake, tmp_path, monkeypatch):
    """A project root whose lab is up: .lab/lab/connection.yml names a host since removed (web9)."""
    monkeypatch.setattr(inventory, "ROOT", tmp_path)
    monkeypatch.setattr(inventory, "LAB_STATE", tmp_path / ".lab")
    inv = hosts_file(tmp_path / "inventory" / "lab")
    conn = put(tmp_path, ".lab/lab/connection.yml", "all:\n  hosts:\n    web1: {ansible_host: 10.0.0.12}\n")

    def answer(args):
        listed = {
            "_meta": {"hostvars": {"web1": {}}},
            "all": {"children": ["ungrouped", "web"]},
            "web": {"hosts": ["web1"]},
        }
        if conn in args:
            listed["_meta"]["hostvars"] = {"web1": {"ansible_host": "10.0.0.12"}, "web9": {"ansible_host": "10.0.0.19"}}
            listed["ungrouped"] = {"hosts": ["web9"]}
        return listed

    return inv, conn, fake(answer)


def test_the_labs_connection_file_gives_addresses_to_the_inventorys_hosts_only(lab_with_connection):
    inv_dir, conn, runner = lab_with_connection
    inv = inventory.load(inv_dir)
    assert inv.hosts == {"web1": {"ansible_host": "10.0.0.12"}}
    assert inv.groups == {"all": ["web1"], "ungrouped": [], "web": ["web1"]}
    assert [args[1:-1] for args, _ in runner.calls] == [["-i", inv_dir, "-i", conn], ["-i", inv_dir]]


def test_without_the_connection_file_only_the_inventory_is_read(lab_with_connection):
    inv_dir, _conn, runner = lab_with_connection
    inv = inventory.load(inv_dir, with_connection=False)
    assert inv.hosts == {"web1": {}}
    assert [args[1:-1] for args, _ in runner.calls] == [["-i", inv_dir]]


# --- load: what Ansible refused, as one line ----------------------------------------


def test_an_ini_inventory_mistake_is_the_ini_parsers_reason_naming_the_file(fake, tmp_path):
    inv = hosts_file(tmp_path / "inv", "[web]\nweb1 ansible_host\n", name="hosts")
    fake(returncode=1, stderr=INI_STDERR.format(dir=inv))
    with pytest.raises(PyfleetError) as err:
        inventory.load(inv)
    assert str(err.value) == (
        f"inventory {inv}: hosts: Expected key=value host variable assignment, got: ansible_host; "
        f"fix that file (ansible-inventory -i {inv} --list shows the whole message)"
    )


def test_a_yaml_inventory_mistake_is_the_yaml_parsers_reason_naming_the_file(fake, tmp_path):
    inv = hosts_file(tmp_path / "inv", "all:\n  hosts:\n    web[1:]: {}\n")
    fake(returncode=1, stderr=RANGE_STDERR.format(dir=inv))
    with pytest.raises(PyfleetError) as err:
        inventory.load(inv)
    assert str(err.value) == (
        f"inventory {inv}: hosts.yml: host range must specify end value; "
        f"fix that file (ansible-inventory -i {inv} --list shows the whole message)"
    )


def test_a_source_outside_the_inventory_is_named_by_its_whole_path(tmp_path):
    stderr = RANGE_STDERR.format(dir="/elsewhere")
    assert inventory._parse_failure(tmp_path, stderr) == "/elsewhere/hosts.yml: host range must specify end value"


def test_a_complaint_without_a_plugins_reason_is_its_error_line_or_its_first_line(tmp_path):
    assert (
        inventory._parse_failure(tmp_path, "[ERROR]: Unable to read the source\nmore\n") == "Unable to read the source"
    )
    assert inventory._parse_failure(tmp_path, "\n  something odd  \nmore\n") == "something odd"
    assert inventory._parse_failure(tmp_path, "") == "unparseable inventory"
    only_auto = "[WARNING]: Failed to parse inventory with 'auto' plugin: no root 'plugin' key found\n"
    assert (
        inventory._parse_failure(tmp_path, only_auto)
        == "[WARNING]: Failed to parse inventory with 'auto' plugin: no root 'plugin' key found"
    )


def test_a_plugin_reason_without_the_source_line_is_the_yaml_plugins(tmp_path):
    stderr = "\n".join(line for line in RANGE_STDERR.splitlines() if "Completely" not in line)
    assert inventory._parse_failure(tmp_path, stderr) == "host range must specify end value"


def test_another_plugin_speaks_when_the_one_meant_for_the_file_did_not(tmp_path):
    stderr = "[WARNING]: Failed to parse inventory with 'toml' plugin: bad table\n[ERROR]: Completely failed to parse inventory source /x/hosts\n"
    assert inventory._parse_failure(tmp_path, stderr) == "/x/hosts: bad table"


@pytest.mark.parametrize(
    "stderr",
    [
        "[ERROR]: Attempting to decrypt but no vault secrets found.\n",
        "[ERROR]: Decryption failed (no vault secrets were found that could decrypt).\n",
    ],
)
def test_vaulted_variables_without_the_right_password_say_how_to_give_it(fake, tmp_path, stderr):
    fake(returncode=1, stderr=stderr)
    with pytest.raises(PyfleetError) as err:
        inventory.load(hosts_file(tmp_path))
    assert str(err.value) == (
        f"inventory {tmp_path}: ansible-vault encrypted variables and no (right) vault password; "
        "set ANSIBLE_VAULT_PASSWORD_FILE=<file with the password> and run the command again"
    )


def test_a_yaml_mistake_is_named_by_file_line_and_column_whatever_ansible_said(fake, tmp_path):
    inv = hosts_file(tmp_path)
    put(inv, "group_vars/all.yml", "a: 1\na: 2\n")
    fake(returncode=1, stderr="[ERROR]: something Ansible said\n")
    with pytest.raises(PyfleetError) as err:
        inventory.load(inv)
    assert str(err.value) == (
        f"inventory {inv}: group_vars/all.yml:2:1 (variable a): duplicate key 'a' (first at line 1); "
        "keep one of them (Ansible refuses both)"
    )


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("childs", "did you mean children? "),
        ("host", "did you mean hosts? "),
        ("variables", "did you mean vars? "),
        ("members", ""),
    ],
)
def test_a_group_key_ansible_skips_is_refused_with_the_key_it_looks_like(fake, tmp_path, key, hint):
    fake({"all": {"hosts": ["web1"]}}, stderr=SKIPPED_STDERR.format(key=key))
    with pytest.raises(PyfleetError) as err:
        inventory.load(hosts_file(tmp_path))
    assert str(err.value) == (
        f"inventory {tmp_path}: group all has key '{key}', which Ansible skips with everything under it "
        f"(a group has only vars, children and hosts); {hint}rename it"
    )


def test_other_warnings_are_no_error(fake, tmp_path):
    fake({"all": {"hosts": ["web1"]}}, stderr="[WARNING]: Skipping key (x) in something else\n")
    assert list(inventory.load(hosts_file(tmp_path)).hosts) == ["web1"]


def test_an_oversized_file_is_refused_before_ansible_reads_it(fake, tmp_path):
    runner = fake({"all": {"hosts": ["web1"]}})
    inv = hosts_file(tmp_path)
    put(inv, "host_vars/web1.yml", b"#" * (inventory.MAX_FILE_BYTES + 1))
    with pytest.raises(PyfleetError, match=r"^inventory .*: host_vars/web1.yml is 1.0 MiB, over the 1 MiB limit"):
        inventory.load(inv)
    assert runner.calls == []


# --- paths and files ----------------------------------------------------------------


def test_a_relative_path_is_the_projects_unless_it_exists_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert inventory.resolve_path("inventory/lab") == LAB
    (tmp_path / "inventory" / "lab").mkdir(parents=True)
    assert inventory.resolve_path("inventory/lab") == tmp_path / "inventory" / "lab"
    assert inventory.resolve_path(LAB) == LAB
    with pytest.raises(PyfleetError) as err:
        inventory.resolve_path("inventory/nope")
    assert str(err.value) == (
        "inventory inventory/nope does not exist; pass --inventory inventory/lab or another directory under inventory/"
    )


def test_inventory_files_are_hosts_files_then_vars_skipping_what_ansible_skips(tmp_path):
    inv = hosts_file(tmp_path / "inv")
    for rel in ("a_hosts.yml", "group_vars/all/b.yml", "group_vars/all/a.yml", "host_vars/web1", "zz/more.yml"):
        put(inv, rel, "x: 1\n")
    for rel in (".hidden.yml", ".git/config.yml", "notes.md", "hosts.yml.bak", "hosts.yml~", "old.retry", "x.pyc"):
        put(inv, rel, "x: 1\n")
    assert [str(f.relative_to(inv)) for f in inventory.inventory_files(inv)] == [
        "a_hosts.yml",
        "hosts.yml",
        "zz/more.yml",
        "group_vars/all/a.yml",
        "group_vars/all/b.yml",
        "host_vars/web1",
    ]
    assert inventory.inventory_files(inv / "hosts.yml") == [inv / "hosts.yml"]


def test_a_symlinked_directory_is_read_once_even_in_a_loop(tmp_path):
    inv = hosts_file(tmp_path / "inv")
    put(inv, "group_vars/all/a.yml", "x: 1\n")
    put(inv, "host_vars/web1.yml", "x: 1\n")
    (inv / "group_vars" / "all" / "again").symlink_to(inv / "group_vars")
    assert [str(f.relative_to(inv)) for f in inventory.inventory_files(inv)] == [
        "hosts.yml",
        "group_vars/all/a.yml",
        "host_vars/web1.yml",
    ]


def test_an_inventory_file_given_alone_is_checked_by_name(tmp_path):
    f = put(tmp_path, "prod.yml", b"#" * (2 * 1024 * 1024 + 1))
    with pytest.raises(PyfleetError) as err:
        inventory.check_sizes(f)
    assert str(err.value) == (
        f"inventory {f}: prod.yml is 2.0 MiB, over the 1 MiB limit of an inventory file (thousands of hosts take a "
        "few hundred KB); check it is the file you meant, or split it into group_vars/ and host_vars/ files"
    )
    inventory.check_sizes(f, limit=3 * 1024 * 1024)


def test_a_single_file_inventory_is_named_by_its_stem():
    assert inventory.Inventory(path=LAB / "hosts.yml").name == "hosts"


# --- select ---------------------------------------------------------------------------


@pytest.fixture
def lab_inventory(lab_json):
    inv = inventory.Inventory(path=LAB, hosts={h: {} for h in LAB_HOSTS})
    inv.groups = {"all": LAB_HOSTS, "ungrouped": [], "web": ["web1", "web2"], "workers": ["worker1", "worker2"]}
    return inv


def test_no_pattern_selects_every_host(lab_inventory):
    assert lab_inventory.select("") == LAB_HOSTS
    assert lab_inventory.select(None) == LAB_HOSTS


def test_a_pattern_list_selects_each_host_once_in_the_order_given(lab_inventory):
    assert lab_inventory.select(" web2 , web ,worker1,workers") == ["web2", "web1", "worker1", "worker2"]


def test_an_unknown_name_lists_the_hosts_and_groups(lab_inventory):
    with pytest.raises(PyfleetError) as err:
        lab_inventory.select("web,webx")
    assert str(err.value) == (
        f"'webx' is neither a host nor a group of inventory {LAB}; "
        "hosts: broker1, lb1, web1, web2, worker1, worker2; groups: all, ungrouped, web, workers"
    )


def test_groups_of_a_host_leave_out_all_and_ungrouped(lab_inventory):
    lab_inventory.groups["ungrouped"] = ["lb1"]
    lab_inventory.groups["zeta"] = ["lb1"]
    lab_inventory.groups["alpha"] = ["lb1"]
    assert lab_inventory.groups_of("lb1") == ["alpha", "zeta"]


# --- YAML mistakes: file, line, column, variable and fix -------------------------------------


@pytest.mark.parametrize(
    ("rel", "text", "expected"),
    [
        (
            "group_vars/all/common.yml",
            "---\ncommon_timezone: UTC\ncommon_locales: [en_US.UTF-8, de_DE.UTF-8\ncommon_x: 1\n",
            "group_vars/all/common.yml:4:9 (variable common_locales): expected ',' or ']', but got ':' "
            "(while parsing a flow sequence at line 3); fix the YAML syntax there",
        ),
        (
            "hosts.yml",
            "all:\n  children:\n    web:\n      hosts:\n        web1: {}\n          web2: {}\n",
            "hosts.yml:6:11: indented deeper than the block at line 5 allows; align it with the keys above it",
        ),
        (
            "host_vars/worker1.yml",
            "---\ncelery_worker_types:\n\t- default\n",
            "host_vars/worker1.yml:3:1 (variable celery_worker_types): found character '\\t' that cannot start any "
            "token (while scanning for the next token); indent with spaces, not tabs",
        ),
        (
            "group_vars/all/broker.yml",
            "---\npyfleet_broker_kind: redis\nredis_password: 'abc\nredis_maxmemory: 128mb\n",
            "group_vars/all/broker.yml:5:1 (variable redis_password): found unexpected end of stream "
            "(while scanning a quoted scalar at line 3); fix the YAML syntax there",
        ),
        (
            "hosts.yml",
            "all:\n  children:\n    web:\n      hosts:\n        web1: {}\n        web2: {}\n        web1: {}\n",
            "hosts.yml:7:9: duplicate key 'web1' (first at line 5); a host appears once per group; remove one",
        ),
        (
            "hosts.yml",
            "all:\n  children:\n    web:\n      hosts: {web1: {}}\n    web:\n      hosts: {web2: {}}\n",
            "hosts.yml:5:5: duplicate key 'web' (first at line 3); keep one of them (Ansible refuses both)",
        ),
        (
            "group_vars/all/common.yml",
            "---\ncommon_timezone: UTC\ncommon_timezone: Europe/Berlin\n",
            "group_vars/all/common.yml:3:1 (variable common_timezone): duplicate key 'common_timezone' "
            "(first at line 2); keep one of them (Ansible refuses both)",
        ),
        (
            "group_vars/all/common.yml",
            "---\n- common_timezone: UTC\n",
            "group_vars/all/common.yml: expected a mapping of variable: value at the top, got a list; "
            "write one 'name: value' per variable",
        ),
        (
            "group_vars/web",
            "just words\n",
            "group_vars/web: expected a mapping of variable: value at the top, got a string; "
            "write one 'name: value' per variable",
        ),
        (
            "hosts.yml",
            "- web1\n- web2\n",
            "hosts.yml: expected a mapping of group: hosts, children and vars at the top, got a list; start it with 'all:'",
        ),
        (
            "group_vars/all/common.yml",
            "---\ncommon_timezone: !!python/object/apply:os.system [id]\n",
            "group_vars/all/common.yml:2:18 (variable common_timezone): could not determine a constructor for the "
            "tag 'tag:yaml.org,2002:python/object/apply:os.system'; remove the tag or quote the value",
        ),
        (
            "group_vars/all/common.yml",
            "---\na: 1\nsecret: !vault\n  key: value\n",
            "group_vars/all/common.yml:3:9 (variable secret): tag !vault is not one Ansible reads here "
            "(only !vault and !unsafe strings); remove the tag or quote the value",
        ),
        (
            "group_vars/all/common.yml",
            "---\na: 1\nb: !env HOME\n",
            "group_vars/all/common.yml:3:4 (variable b): tag !env is not one Ansible reads here "
            "(only !vault and !unsafe strings); remove the tag or quote the value",
        ),
        (
            "host_vars/web1.yml",
            b"---\nansible_host: 127.0.0.12\nnote: \xff\xfe caf\xe9\n",
            "host_vars/web1.yml:3: byte 35 is not UTF-8 text (a binary file?); "
            "save it as UTF-8 or move it out of the inventory directory",
        ),
        (
            "group_vars/all/apps.yml",
            "---\npyfleet_apps:\n  - name: hello\n    kind: wsgi\n    kind: asgi\n",
            "group_vars/all/apps.yml:5:5 (variable pyfleet_apps): duplicate key 'kind' (first at line 4); "
            "keep one of them (Ansible refuses both)",
        ),
        (
            "group_vars/all/apps.yml",
            "---\npyfleet_apps: [{name: hello,\n  kind: wsgi\n",
            "group_vars/all/apps.yml:4:1 (variable pyfleet_apps): expected ',' or '}', but got '<stream end>' "
            "(while parsing a flow mapping at line 2); fix the YAML syntax there",
        ),
        (
            "group_vars/all/x.yml",
            "a: [1,\n",
            "group_vars/all/x.yml:2:1 (variable a): expected the node content, but found '<stream end>' "
            "(while parsing a flow node); fix the YAML syntax there",
        ),
        (
            "group_vars/all/x.yml",
            "[a, b\nc: 1\n",
            "group_vars/all/x.yml:2:2: expected ',' or ']', but got ':' (while parsing a flow sequence at line 1); "
            "fix the YAML syntax there",
        ),
        (
            "group_vars/all/x.yml",
            "HTTP_PROXY: [a,\nb: 1\n",
            "group_vars/all/x.yml:3:1 (variable HTTP_PROXY): expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence at line 1); fix the YAML syntax there",
        ),
        (
            "hosts.yml",
            "hosts:\n  web1: {}\n  web1: {}\n",
            "hosts.yml:3:3: duplicate key 'web1' (first at line 2); a host appears once per group; remove one",
        ),
        (
            "hosts.yml",
            "all:\n  hosts:\n    web1: {}\n    web1: {}\n",
            "hosts.yml:4:5: duplicate key 'web1' (first at line 3); a host appears once per group; remove one",
        ),
        (
            "hosts.yml",
            "all:\n  hosts:\n    web1: {}\n# web2 is gone\n    web1: {}\n",
            "hosts.yml:5:5: duplicate key 'web1' (first at line 3); a host appears once per group; remove one",
        ),
        (
            "group_vars/all/x.yml",
            "base: &b {x: 1}\nc:\n  <<: *b\n  y: 1\n  y: 2\n",
            "group_vars/all/x.yml:5:3 (variable c): duplicate key 'y' (first at line 4); keep one of them (Ansible refuses both)",
        ),
        (
            "group_vars/all/x.yml",
            "  - a\nb: 1\n",
            "group_vars/all/x.yml:2:1 (variable b): expected '<document start>', but found '<block mapping start>'; "
            "fix the YAML syntax there",
        ),
    ],
)
def test_a_yaml_mistake_is_one_line_with_where_what_and_the_fix(tmp_path, rel, text, expected):
    inv = hosts_file(tmp_path / "inv")
    put(inv, rel, text)
    assert inventory.yaml_problem(inv) == expected


def test_a_yaml_file_outside_vars_directories_may_hold_anything_but_a_mapping_is_checked(tmp_path):
    inv = hosts_file(tmp_path / "inv")
    put(inv, "group_vars/all/empty.yml", "---\n")
    put(inv, "scripts/notes", "not: [yaml")  # not a YAML file, not under group_vars
    assert inventory.yaml_problem(inv) is None


def test_a_single_file_inventory_is_checked_by_its_name(tmp_path):
    f = put(tmp_path, "prod.yml", "all:\n  vars:\n    a: 1\n    a: 2\n")
    assert inventory.yaml_problem(f) == (
        "prod.yml:4:5: duplicate key 'a' (first at line 3); keep one of them (Ansible refuses both)"
    )


def test_a_yaml_error_without_a_position_names_the_file(tmp_path, monkeypatch):
    import yaml

    inv = hosts_file(tmp_path / "inv")

    def broken(*_args, **_kwargs):
        raise yaml.YAMLError("reader gave up")

    monkeypatch.setattr(inventory.yaml, "load", broken)
    assert inventory.yaml_problem(inv) == "hosts.yml: reader gave up; fix the YAML syntax there"


def test_yaml_keys_that_are_unhashable_or_merged_are_left_to_the_yaml_library(tmp_path):
    inv = hosts_file(tmp_path / "inv")
    put(inv, "group_vars/all/a.yml", "base: &b {x: 1}\nc:\n  <<: *b\n  <<: *b\n  y: 2\n")
    assert inventory.yaml_problem(inv) is None
    put(inv, "group_vars/all/a.yml", "? [1, 2]\n: x\n")
    assert "found unhashable key" in inventory.yaml_problem(inv)


def test_vaulted_and_unsafe_strings_are_values_other_tags_and_tagged_mappings_are_not(tmp_path):
    inv = hosts_file(tmp_path / "inv")
    put(inv, "group_vars/all.yml", "a: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3030\nb: !unsafe '{{ x }}'\n")
    assert inventory.yaml_problem(inv) is None
    assert inventory.yaml.load("b: !unsafe '{{ x }}'\n", Loader=inventory._StrictLoader) == {"b": "{{ x }}"}
    put(inv, "group_vars/all.yml", "b: !unsafe [1]\n")
    assert "tag !unsafe is not one Ansible reads here" in inventory.yaml_problem(inv)


def test_a_yaml_error_without_words_is_invalid_yaml(tmp_path, monkeypatch):
    import yaml

    inv = hosts_file(tmp_path / "inv")
    mark = yaml.Mark("hosts.yml", 0, 1, 2, None, None)

    def broken(*_args, **_kwargs):
        raise yaml.MarkedYAMLError(context="while reading", context_mark=mark)

    monkeypatch.setattr(inventory.yaml, "load", broken)
    assert inventory.yaml_problem(inv) == "hosts.yml:2:3: invalid YAML (while reading); fix the YAML syntax there"


def test_a_file_that_is_no_yaml_does_not_hide_a_mistake_after_it(tmp_path):
    inv = hosts_file(tmp_path / "inv", "[web]\nweb1\n", name="hosts")
    put(inv, "group_vars/all.yml", "a: [1\n")
    assert inventory.yaml_problem(inv).startswith("group_vars/all.yml:2:1 (variable a): ")


def test_a_top_level_file_named_like_a_vars_directory_is_an_inventory_source_not_yaml(tmp_path):
    inv = hosts_file(tmp_path / "inv", "[web]\nweb1\n", name="group_vars")
    assert inventory.yaml_problem(inv) is None


def test_a_symlinked_vars_directory_is_read(tmp_path):
    inv = hosts_file(tmp_path / "inv")
    put(tmp_path, "shared/all.yml", "x: 1\n")
    (inv / "group_vars").symlink_to(tmp_path / "shared")
    assert [str(f.relative_to(inv)) for f in inventory.inventory_files(inv)] == ["hosts.yml", "group_vars/all.yml"]


def test_files_sort_by_path_not_by_the_order_the_walk_finds_them(tmp_path):
    inv = hosts_file(tmp_path / "inv", name="z.yml")
    put(inv, "b/x.yml", "x: 1\n")
    assert [str(f.relative_to(inv)) for f in inventory.inventory_files(inv)] == ["b/x.yml", "z.yml"]


def test_a_file_at_the_limit_is_read_and_sizes_are_mib_to_one_decimal(tmp_path):
    f = put(tmp_path, "hosts.yml", b"#" * inventory.MAX_FILE_BYTES)
    inventory.check_sizes(tmp_path)
    f.write_bytes(b"#" * 1101005)  # 1.05 MiB and a byte
    with pytest.raises(PyfleetError, match=r": hosts.yml is 1.1 MiB, over the 1 MiB limit"):
        inventory.check_sizes(tmp_path)


def test_the_yaml_plugins_reason_counts_for_a_yaml_file_whatever_order_the_plugins_ran_in(tmp_path):
    stderr = (
        "[WARNING]: Failed to parse inventory with 'ini' plugin: Failed to parse inventory: Invalid host pattern\n"
        "[WARNING]: Failed to parse inventory with 'yaml' plugin: YAML parsing failed: bad indentation\n"
        f"[ERROR]: Completely failed to parse inventory source {tmp_path}/hosts.yml\n"
    )
    assert inventory._parse_failure(tmp_path, stderr) == "hosts.yml: bad indentation"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[ERROR]: host pattern [web]: not valid", "host pattern [web]: not valid"),
        ("[ERROR]:no space", "no space"),
        ("[ERROR] no colon", "[ERROR] no colon"),
    ],
)
def test_an_error_line_is_what_follows_its_tag(tmp_path, line, reason):
    assert inventory._parse_failure(tmp_path, line + "\n") == reason


@pytest.mark.parametrize(
    ("reason", "said"),
    [("Invalid section entry.", "Invalid section entry"), ("Unknown host webX.", "Unknown host webX")],
)
def test_the_reasons_full_stop_is_dropped_before_the_fix(fake, tmp_path, reason, said):
    inv = hosts_file(tmp_path / "inv", "[web]\n", name="hosts")
    stderr = (
        f"[WARNING]: Failed to parse inventory with 'ini' plugin: Failed to parse inventory: {reason}\n"
        f"[ERROR]: Completely failed to parse inventory source {inv}/hosts\n"
    )
    fake(returncode=1, stderr=stderr)
    with pytest.raises(PyfleetError) as err:
        inventory.load(inv)
    assert str(err.value).startswith(f"inventory {inv}: hosts: {said}; fix that file")


def test_a_vault_file_that_would_not_decrypt_says_how_to_give_the_password(fake, tmp_path):
    fake(returncode=1, stderr="[ERROR]: Decryption failed on /x/group_vars/all/vault.yml\n")
    with pytest.raises(PyfleetError, match="set ANSIBLE_VAULT_PASSWORD_FILE=<file with the password>"):
        inventory.load(hosts_file(tmp_path))
