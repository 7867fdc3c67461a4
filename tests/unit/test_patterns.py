"""The one host-pattern matcher selects exactly what Ansible's InventoryManager selects."""

import pytest
import yaml
from ansible.errors import AnsibleError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader

from pyfleet.errors import PyfleetError
from pyfleet.patterns import match_hosts, split

INVENTORY = {
    "all": {
        "children": {
            "loadbalancers": {"hosts": {"lb1": None}},
            "web": {"hosts": {"web1": None, "web2": None, "web3": None}},
            "webservers": {"hosts": {"srv1": None}},
            "workers": {"hosts": {"worker1": None, "worker2": None}},
            "brokers": {"hosts": {"broker1": None}},
            "eu": {"hosts": {"web1": None, "worker1": None}},
            "api.internal": {"hosts": {"api1": None}},
        },
        "hosts": {"db.example.com": None},
    }
}

PATTERNS = [
    "web",
    "web1",
    "web:workers",
    "web,workers",
    "web:&eu",
    "web:!web3",
    "web*",
    "w*",
    "~web[0-9]",
    "~(web|worker)1",
    "web[0]",
    "web[-1]",
    "web[1:2]",
    "web[1:]",
    "all",
    "all:!eu",
    "webservers",
    "*.internal",
    "api.internal",
    "db.example.com",
    "*.com",
    "nothing",
    "web:nothing",
    "web[12]",
    "work?r1",
    "!web",
    "&web",
    "web:&eu:!web1",
    "worker1,broker1",
    "web[1-2]",
]


@pytest.fixture(scope="module")
def ansible_inventory(tmp_path_factory):
    path = tmp_path_factory.mktemp("inv") / "hosts.yml"
    path.write_text(yaml.safe_dump(INVENTORY))
    return InventoryManager(loader=DataLoader(), sources=[str(path)])


@pytest.fixture(scope="module")
def groups(ansible_inventory):
    return {name: [h.name for h in g.get_hosts()] for name, g in ansible_inventory.groups.items()}


@pytest.mark.parametrize("pattern", PATTERNS)
def test_selects_what_ansible_selects(pattern, ansible_inventory, groups):
    try:
        expected = {h.name for h in ansible_inventory.get_hosts(pattern)}
    except AnsibleError:  # a subscript past the end
        with pytest.raises(PyfleetError, match="no host at that position"):
            match_hosts(pattern, groups)
        return
    assert set(match_hosts(pattern, groups)) == expected


def test_a_glob_matches_groups_as_well_as_hosts(groups):
    # The case the three old matchers disagreed on: web* names group webservers.
    assert "srv1" in match_hosts("web*", groups)


def test_an_empty_pattern_selects_nothing(groups):
    assert match_hosts("", groups) == [] and match_hosts(None, groups) == []


def test_result_is_in_inventory_order(groups):
    assert match_hosts("web3,web1", groups) == ["web1", "web3"]


def test_split_keeps_ranges_whole():
    assert split("web[1:2]:workers") == ["web[1:2]", "workers"]
    assert split("a,b:c") == ["a", "b:c"]
