"""Reading inventories: what Ansible parses, and one-line errors for broken ones."""

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
