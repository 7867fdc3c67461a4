"""Role variables set in the inventory are checked against the roles' specs before any host."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pyfleet import inventory, role_arguments
from pyfleet.errors import PyfleetError
from pyfleet.plan import ControllerHostVars

ROOT = Path(__file__).resolve().parents[2]


def check(variables, host="web1"):
    role_arguments.check({host: variables}, [host])


def test_a_value_of_the_wrong_type_is_one_line_naming_host_variable_and_spec():
    with pytest.raises(PyfleetError) as refused:
        check({"nginx_http_port": "eighty"})
    assert str(refused.value) == (
        "nginx_http_port on web1: 'eighty' is not an integer; "
        "set nginx_http_port to an integer (roles/nginx/meta/argument_specs.yml)"
    )


def test_a_value_outside_the_choices_names_them():
    with pytest.raises(PyfleetError, match=r"^redis_maxmemory_policy on broker1: 'lru' is not noeviction; set"):
        role_arguments.check({"broker1": {"redis_maxmemory_policy": "lru"}}, ["broker1"])


def test_values_ansible_converts_pass_as_the_role_would_take_them():
    check({"nginx_http_port": "8080", "common_timezone": "Europe/Berlin", "redis_port": 6380})


def write_spec(roles, options):
    (roles / "thing" / "meta").mkdir(parents=True)
    (roles / "thing" / "meta" / "argument_specs.yml").write_text(
        yaml.safe_dump({"argument_specs": {"main": {"options": options}}})
    )


def test_a_secret_is_not_shown(tmp_path):
    write_spec(tmp_path, {"thing_pin": {"type": "int", "no_log": True}})
    with pytest.raises(PyfleetError) as refused:
        role_arguments.check({"h1": {"thing_pin": "hunter2"}}, ["h1"], roles_dir=tmp_path)
    assert str(refused.value).startswith("thing_pin on h1: the value is not an integer; set thing_pin to an integer")
    assert "hunter2" not in str(refused.value)


def test_templates_and_vault_values_are_left_to_the_play(tmp_path):
    check({"nginx_http_port": "{{ base_port + 1 }}"})
    check({"redis_password": {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n6162"}})


def test_variables_no_role_declares_are_not_checked():
    check({"my_own_setting": [1, 2], "pyfleet_apps": []})


def test_a_structure_gets_the_validators_words(tmp_path):
    roles = tmp_path / "roles"
    spec = {"type": "list", "elements": "dict", "options": {"name": {"type": "str", "required": True}}}
    write_spec(roles, {"thing_users": spec})
    with pytest.raises(PyfleetError) as refused:
        role_arguments.check({"h1": {"thing_users": [{"nom": "x"}]}}, ["h1"], roles_dir=roles)
    message = str(refused.value)
    assert message.startswith("thing_users on h1: ") and "name" in message
    assert message.endswith("fix it as roles/thing/meta/argument_specs.yml describes")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"type": "int"}, "an integer"),
        ({"type": "list", "elements": "str"}, "a list of strings"),
        ({"type": "list", "elements": "dict"}, "a list of mappings"),
        ({"type": "str", "choices": ["a", "b"]}, "one of a, b"),
        ({}, "a string"),
    ],
)
def test_expected_says_what_a_value_must_be(spec, words):
    assert role_arguments.expected(spec) == words


def test_every_role_spec_is_read_and_variables_map_to_their_role():
    options = role_arguments.role_options()
    roles = {role for role, _ in options.values()}
    assert {"common", "nginx", "loadbalancer", "redis", "celery_worker", "app"} <= roles
    assert options["loadbalancer_tls_mode"][0] == "loadbalancer"


def shipped_inventories():
    """The inventories pyfleet ships and tests with: inventory/*, each molecule scenario's."""
    for path in sorted((ROOT / "inventory").iterdir()):
        inv = inventory.load(str(path))
        yield path.name, ControllerHostVars(inv.hosts, inv.groups), list(inv.hosts)
    for scenario in sorted((ROOT / "molecule").glob("*/molecule.yml")):
        inv = yaml.safe_load(scenario.read_text())["provisioner"]["inventory"]
        shared = (inv.get("group_vars") or {}).get("all") or {}
        hosts = {}
        for platform in yaml.safe_load(scenario.read_text())["platforms"]:
            hosts[platform["name"]] = dict(shared, **((inv.get("host_vars") or {}).get(platform["name"]) or {}))
        yield scenario.parent.name, hosts, list(hosts)


@pytest.mark.parametrize(
    ("name", "hostvars", "hosts"), list(shipped_inventories()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_the_shipped_inventories_pass(name, hostvars, hosts):
    role_arguments.check(hostvars, hosts)


def test_the_plan_play_refuses_a_role_variable_before_any_host(tmp_path):
    """ansible-playbook plan.yml with Ansible's hostvars; the lab's hosts get addresses, none is contacted."""
    inv = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventory" / "lab", inv)
    addresses = {host: {"ansible_host": f"10.250.0.{n}"} for n, host in enumerate(inventory.load(str(inv)).hosts, 2)}
    (inv / "addresses.yml").write_text(yaml.safe_dump({"all": {"hosts": addresses}}))
    web2 = inv / "host_vars" / "web2.yml"
    web2.write_text(web2.read_text() + "common_journald_persistent: sometimes\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    run = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(inv), "playbooks/plan.yml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert (
        "common_journald_persistent on web2: 'sometimes' is not true or false; set common_journald_persistent to true or false"
        in run.stdout + run.stderr
    )
    assert "unreachable=1" not in run.stdout


ROLE_CHECK = {
    "type": "role",
    "name": "nginx",
    "argument_spec_name": "main",
    "path": str(role_arguments.ROLES / "nginx"),
}


@pytest.mark.parametrize(
    ("action", "args", "plan", "skipped"),
    [
        ("ansible.builtin.validate_argument_spec", {"validate_args_context": ROLE_CHECK}, {"apps": []}, True),
        ("validate_argument_spec", {"validate_args_context": ROLE_CHECK}, {"apps": []}, True),
        # No plan yet (a playbook without plan.yml), or a plan that refused the inventory.
        ("ansible.builtin.validate_argument_spec", {"validate_args_context": ROLE_CHECK}, None, False),
        ("ansible.builtin.validate_argument_spec", {"validate_args_context": ROLE_CHECK}, {"error": "x"}, False),
        # A role that is not pyfleet's: the plan did not check its variables.
        (
            "ansible.builtin.validate_argument_spec",
            {"validate_args_context": dict(ROLE_CHECK, path="/etc/ansible/roles/nginx")},
            {"apps": []},
            False,
        ),
        # A check someone wrote as a task, and any other task.
        ("ansible.builtin.validate_argument_spec", {"argument_spec": {}}, {"apps": []}, False),
        ("ansible.builtin.template", {"validate_args_context": ROLE_CHECK}, {"apps": []}, False),
    ],
)
def test_only_ansibles_own_check_of_a_pyfleet_role_is_passed_over_after_the_plan(action, args, plan, skipped):
    assert role_arguments.checked_by_plan(action, args, plan) is skipped
