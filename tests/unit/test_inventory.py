"""Reading inventories: what Ansible parses, and one-line errors for broken ones."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pyfleet import inventory
from pyfleet.errors import PyfleetError


def write(tmp_path, text):
    (tmp_path / "hosts.yml").write_text(text)
    return tmp_path


def test_default_lab_inventory_has_six_hosts_in_their_groups():
    inv = inventory.load("inventory/lab")
    assert len(inv.hosts) == 6
    assert inv.groups["web"] == ["web1", "web2"]
    assert inv.groups_of("worker1") == ["workers"]
    assert inv.name == "lab"


def test_host_named_twice_is_one_line_naming_it(tmp_path):
    write(tmp_path, "all:\n  children:\n    web:\n      hosts:\n        web1: {}\n        web1: {}\n")
    with pytest.raises(PyfleetError) as err:
        inventory.load(tmp_path)
    msg = str(err.value)
    assert "duplicate" in msg and "'web1'" in msg and "hosts.yml:6" in msg
    assert "\n" not in msg


def test_inventory_without_hosts_is_refused(tmp_path):
    write(tmp_path, "all:\n  children:\n    web: {}\n")
    with pytest.raises(PyfleetError, match="has no hosts; add hosts"):
        inventory.load(tmp_path)


def test_missing_inventory_is_refused(tmp_path):
    with pytest.raises(PyfleetError, match="does not exist; pass --inventory"):
        inventory.load(tmp_path / "nope")


def test_select_by_group_host_and_list():
    inv = inventory.load("inventory/lab")
    assert inv.select("web") == ["web1", "web2"]
    assert inv.select("lb1,workers,worker1") == ["lb1", "worker1", "worker2"]
    with pytest.raises(PyfleetError, match="'webx' is neither a host nor a group"):
        inv.select("webx")


@pytest.fixture
def vaulted_inventory(tmp_path):
    """An inventory whose group_vars/all/vault.yml is encrypted with the password 'right'."""
    inv = tmp_path / "inv"
    (inv / "group_vars" / "all").mkdir(parents=True)
    write(inv, "all:\n  children:\n    web:\n      hosts:\n        web1: {}\n")
    vault = inv / "group_vars" / "all" / "vault.yml"
    vault.write_text("vault_secret_key: s3cr3t\n")
    (tmp_path / "right").write_text("right\n")
    (tmp_path / "wrong").write_text("wrong\n")
    ansible_vault = Path(sys.executable).parent / "ansible-vault"
    subprocess.run(
        [ansible_vault, "encrypt", "--vault-password-file", tmp_path / "right", vault], check=True, capture_output=True
    )
    return inv


@pytest.mark.parametrize("password", [None, "wrong"])
def test_vaulted_inventory_without_the_password_says_how_to_give_it(vaulted_inventory, monkeypatch, password):
    if password:
        monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(vaulted_inventory.parent / password))
    else:
        monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)
    with pytest.raises(PyfleetError) as err:
        inventory.load(vaulted_inventory)
    msg = str(err.value)
    assert "set ANSIBLE_VAULT_PASSWORD_FILE" in msg and str(vaulted_inventory) in msg
    assert "\n" not in msg


def test_vaulted_inventory_with_the_password_is_read(vaulted_inventory, monkeypatch):
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(vaulted_inventory.parent / "right"))
    inv = inventory.load(vaulted_inventory)
    assert inv.hosts["web1"]["vault_secret_key"] == "s3cr3t"


def test_a_file_at_the_size_limit_is_read_one_byte_more_is_refused(tmp_path):
    (tmp_path / "hosts.yml").write_bytes(b"#" * inventory.MAX_FILE_BYTES)
    inventory.check_sizes(tmp_path)
    (tmp_path / "hosts.yml").write_bytes(b"#" * (inventory.MAX_FILE_BYTES + 1))
    with pytest.raises(PyfleetError, match=r"^inventory .*: hosts.yml is 1.0 MiB, over the 1 MiB limit"):
        inventory.check_sizes(tmp_path)


def test_yaml_check_accepts_what_ansible_reads(tmp_path):
    """Vaulted and unsafe strings, merge keys, JSON, and files Ansible ignores are no YAML mistakes."""
    write(tmp_path, "all:\n  hosts:\n    web1: {}\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(
        "a: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3030\nb: !unsafe '{{ x }}'\n"
        "base: &base {x: 1}\nc:\n  <<: *base\n  y: 2\n"
    )
    (tmp_path / "group_vars" / "web.json").write_text('{"d": [1, 2]}')
    (tmp_path / "README.md").write_text("not: [yaml")
    assert inventory.yaml_problem(tmp_path) is None


def test_lab_inventory_files_are_far_below_the_limit():
    assert max(f.stat().st_size for f in inventory.inventory_files("inventory/lab")) < inventory.MAX_FILE_BYTES // 100


def test_the_canned_lab_listing_is_what_ansible_inventory_prints_today():
    """test_inventory_parsing.py feeds load() this listing instead of running Ansible: it must not drift."""
    real = subprocess.run(
        [Path(sys.executable).parent / "ansible-inventory", "-i", inventory.ROOT / "inventory" / "lab", "--list"],
        check=True,
        capture_output=True,
        text=True,
    )
    canned = Path(__file__).parent / "fixtures" / "inventory" / "lab.json"
    assert json.loads(real.stdout) == json.loads(canned.read_text(encoding="utf-8")), (
        "regenerate tests/unit/fixtures/inventory/lab.json: ansible-inventory -i inventory/lab --list"
    )


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"hosts": "[web]\nweb1 ansible_host\n"},
            "hosts: Expected key=value host variable assignment, got: ansible_host",
        ),
        ({"hosts.yml": "all:\n  hosts:\n    web[1:]: {}\n"}, "hosts.yml: host range must specify end value"),
        (
            {"hosts.yml": "- web1\n"},
            "hosts.yml: expected a mapping of group: hosts, children and vars at the top, got a list; start it with 'all:'",
        ),
    ],
)
def test_an_inventory_ansible_cannot_parse_is_one_line_with_the_file_and_ansibles_reason(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(PyfleetError) as err:
        inventory.load(tmp_path)
    assert str(err.value).startswith(f"inventory {tmp_path}: {expected}")
    assert "\n" not in str(err.value)
