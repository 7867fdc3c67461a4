"""Small controller helpers: mirrors, image recipe, recap parsing, tables, lab files."""

import json
import subprocess

import pytest
import yaml

from pyfleet import ansible, image, lab, suite
from pyfleet.errors import PyfleetError
from pyfleet.inventory import Inventory
from pyfleet.tables import table

DEB822 = """Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
"""


def test_mirrors_from_deb822_sources():
    assert image.parse_mirrors(DEB822) == ("http://mirror.example/debian", "http://mirror.example/debian-security")


def test_mirrors_from_one_line_sources():
    text = "deb [arch=amd64] http://m.example/debian/ bookworm main\n"
    assert image.parse_mirrors(text) == ("http://m.example/debian", None)


def test_no_mirror_is_one_line_error():
    with pytest.raises(PyfleetError, match="set PYFLEET_DEBIAN_MIRROR"):
        image.parse_mirrors("# nothing here\n")


def test_mirror_override_from_environment(monkeypatch):
    monkeypatch.setenv("PYFLEET_DEBIAN_MIRROR", "http://local.mirror/debian")
    assert image.controller_mirror()[0] == "http://local.mirror/debian"


def test_image_tag_changes_with_the_recipe(monkeypatch):
    before = image.image_tag("bookworm")
    monkeypatch.setattr(image, "PACKAGES", [*image.PACKAGES, "htop"])
    assert image.image_tag("bookworm") != before
    assert image.image_tag("trixie").startswith(f"{image.IMAGE_NAME}:trixie-")


def test_unknown_suite_is_refused():
    with pytest.raises(PyfleetError, match="unknown Debian suite 'sid'"):
        image.ensure_image("sid")


RECAP_OUTPUT = """
PLAY RECAP *********************************************************************
lb1                        : ok=13   changed=5    unreachable=0    failed=0    skipped=2
web1                       : ok=3    changed=0    unreachable=1    failed=0    skipped=0
"""


def test_parse_recap():
    stats = ansible.parse_recap(RECAP_OUTPUT)
    assert stats["lb1"] == {"ok": 13, "changed": 5, "unreachable": 0, "failed": 0}
    assert stats["web1"]["unreachable"] == 1
    assert ansible.total_changed(stats) == 5


def test_table_pads_columns():
    out = table(["host", "state"], [["web1", "up"], ["broker1", None]]).splitlines()
    assert out[0] == "host     state"
    assert out[2] == "web1     up"
    assert out[1] == "-------  -----"
    assert out[3] == "broker1"


def test_table_refuses_a_row_with_more_cells_than_headers():
    """A value without a column is a caller's mistake: it is not silently left out."""
    with pytest.raises(ValueError):
        table(["host"], [["web1", "up"]])


def test_connection_file_is_rewritten_only_on_change(tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "LAB_DIR", tmp_path)
    inv = Inventory(path=tmp_path / "lab", hosts={"web1": {}}, groups={"all": ["web1"]})
    lb = lab.Lab(inv)
    lb.state_dir.mkdir(parents=True)
    assert lab.write_connection_file(lb, {"web1": "10.0.0.2"}) is True
    assert lab.write_connection_file(lb, {"web1": "10.0.0.2"}) is False
    data = yaml.safe_load(lb.connection_file.read_text())
    assert data["all"]["hosts"]["web1"]["ansible_host"] == "10.0.0.2"
    assert data["all"]["vars"]["ansible_ssh_private_key_file"] == str(lb.key)
    assert lab.load_connection(inv) == {"web1": "10.0.0.2"}


def test_grown_inventory_adds_one_host_and_keeps_the_name(tmp_path):
    from pyfleet import inventory

    grown = lab.grown_inventory(
        inventory.load("inventory/lab", with_connection=False),
        tmp_path,
        "worker3",
        "workers",
        {"celery_worker_types": ["io"]},
    )
    assert grown.name == "lab"  # same lab: network, key and connection file are shared
    inv = inventory.load(grown, with_connection=False)
    assert inv.groups["workers"] == ["worker1", "worker2", "worker3"]
    assert inv.hosts["worker3"]["celery_worker_types"] == ["io"]
    assert inv.hosts["worker1"]["celery_worker_types"] == ["default", "io"]
    lab.add_host(grown, "web3", "web")
    lab.add_domain(grown, "hello", "www.hello.lab.test")
    inv = inventory.load(grown, with_connection=False)
    assert inv.groups["web"] == ["web1", "web2", "web3"]
    hello = next(a for a in inv.hosts["web3"]["pyfleet_apps"] if a["name"] == "hello")
    assert hello["domains"] == ["hello.lab.test", "www.hello.lab.test"]


def test_a_new_base_image_removes_the_older_ones_of_its_suite_only(monkeypatch):
    new = f"{image.IMAGE_NAME}:bookworm-new"
    listed = [
        f"{image.IMAGE_NAME}:bookworm-old1",
        f"{image.IMAGE_NAME}:bookworm-inuse",
        new,
        f"{image.IMAGE_NAME}:trixie-x",
    ]
    removed = []

    def podman(*args, **_kwargs):
        if args[0] == "images":
            return subprocess.CompletedProcess([], 0, "\n".join(listed), "")
        in_use = args[1].endswith("inuse")  # podman refuses to remove an image a container uses
        if not in_use:
            removed.append(args[1])
        return subprocess.CompletedProcess([], 2 if in_use else 0, "", "image is in use" if in_use else "")

    monkeypatch.setattr(image, "podman", podman)
    said = []
    image._remove_superseded("bookworm", new, said.append)
    assert removed == [f"{image.IMAGE_NAME}:bookworm-old1"]
    assert said == [f"removed the superseded base image {image.IMAGE_NAME}:bookworm-old1"]


def test_molecule_jobs_default_and_override(monkeypatch):
    monkeypatch.delenv("PYFLEET_MOLECULE_JOBS", raising=False)
    assert suite.molecule_jobs() == 2
    monkeypatch.setenv("PYFLEET_MOLECULE_JOBS", "1")
    assert suite.molecule_jobs() == 1


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_molecule_jobs_refuses_what_is_not_a_positive_number(monkeypatch, value):
    monkeypatch.setenv("PYFLEET_MOLECULE_JOBS", value)
    with pytest.raises(PyfleetError, match="PYFLEET_MOLECULE_JOBS"):
        suite.molecule_jobs()


class FakeBoots:
    """Stands in for podman in lab.start_host: the first ``failures`` containers die at boot."""

    def __init__(self, failures):
        self.failures, self.created, self.state = failures, 0, None

    def install(self, monkeypatch):
        monkeypatch.setattr(lab, "BOOT_RETRY_PAUSE", 0)
        monkeypatch.setattr(lab, "container_state", lambda _lab, _host: (self.state, None))
        monkeypatch.setattr(lab, "_create", self.create)
        monkeypatch.setattr(lab, "_install_key", self.install_key)
        monkeypatch.setattr(lab, "_why_stopped", lambda _lab, _host: "exit code 255, last log line: boom")
        monkeypatch.setattr(lab, "podman", self.rm)

    def create(self, _lab, _host, _tag):
        self.created += 1
        self.state = "exited" if self.created <= self.failures else "running"

    def install_key(self, _lab, _host, _pubkey):
        ok = self.state == "running"
        return subprocess.CompletedProcess([], 0 if ok else 1, "", "" if ok else "cannot exec in a stopped container")

    def rm(self, *args, **_kwargs):
        assert args[0] == "rm", args
        self.state = None
        return subprocess.CompletedProcess([], 0, "", "")


def test_a_host_that_dies_at_boot_is_created_again(monkeypatch):
    fake = FakeBoots(failures=2)
    fake.install(monkeypatch)
    said = []
    the_lab = lab.Lab(Inventory(path=lab.ROOT / "inventory" / "lab", hosts={"lb1": {}}))
    assert lab.start_host(the_lab, "lb1", "img:tag", "ssh-ed25519 AAAA", log=said.append) is True
    assert fake.created == 3
    assert len(said) == 2 and "init is not running (exit code 255" in said[0]


class LateNews(FakeBoots):
    """The first container dies at once, but podman says "running" for two more looks."""

    def __init__(self):
        super().__init__(failures=1)
        self.stale_looks = 0

    def create(self, _lab, _host, _tag):
        super().create(_lab, _host, _tag)
        if self.state == "exited":
            self.stale_looks = 2

    def install_key(self, _lab, _host, _pubkey):
        return super().install_key(_lab, _host, _pubkey) if not self.stale_looks else self.dead()

    def dead(self):
        return subprocess.CompletedProcess([], 1, "", "Error: OCI runtime error: cannot exec in a stopped container")

    def rm(self, *args, **kwargs):
        self.stale_looks = 0  # podman's stale word was about the container now removed
        return super().rm(*args, **kwargs)

    def look(self, _lab, _host):
        if self.stale_looks:
            self.stale_looks -= 1
            return "running", None
        return self.state, None


def test_a_host_podman_still_calls_running_after_it_died_is_created_again(monkeypatch):
    fake = LateNews()
    fake.install(monkeypatch)
    monkeypatch.setattr(lab, "container_state", fake.look)
    monkeypatch.setattr(lab.time, "sleep", lambda _s: None)
    the_lab = lab.Lab(Inventory(path=lab.ROOT / "inventory" / "lab", hosts={"lb1": {}}))
    assert lab.start_host(the_lab, "lb1", "img:tag", "ssh-ed25519 AAAA", log=lambda _: None) is True
    assert fake.created == 2


def test_a_host_podman_calls_running_long_after_it_died_is_created_again(monkeypatch):
    """A machine restored from a snapshot with the lab up: podman says "Up", no process is behind it."""
    fake = LateNews()
    fake.create = lambda *a: (FakeBoots.create(fake, *a), setattr(fake, "stale_looks", 99 if fake.created == 1 else 0))
    fake.install(monkeypatch)
    monkeypatch.setattr(lab, "container_state", fake.look)
    monkeypatch.setattr(lab.time, "sleep", lambda _s: None)
    said = []
    the_lab = lab.Lab(Inventory(path=lab.ROOT / "inventory" / "lab", hosts={"lb1": {}}))
    assert lab.start_host(the_lab, "lb1", "img:tag", "ssh-ed25519 AAAA", log=said.append) is True
    assert fake.created == 2
    assert said == [
        "lb1: the container's init is not running (exit code 255, last log line: boom; "
        "podman still said running); creating it once more"
    ]


def test_a_running_host_whose_login_setup_fails_otherwise_is_one_line(monkeypatch):
    fake = FakeBoots(failures=0)
    fake.install_key = lambda *a: subprocess.CompletedProcess([], 1, "", "visudo: syntax error")
    fake.install(monkeypatch)
    monkeypatch.setattr(lab.time, "sleep", lambda _s: None)
    the_lab = lab.Lab(Inventory(path=lab.ROOT / "inventory" / "lab", hosts={"lb1": {}}))
    with pytest.raises(
        PyfleetError, match=r"^setting up the lab login \(deploy\) on lb1 failed: visudo: syntax error;"
    ):
        lab.start_host(the_lab, "lb1", "img:tag", "ssh-ed25519 AAAA", log=lambda _: None)
    assert fake.created == 1


NOT_DEAD_YET = "Error: cannot remove container 71b0 as it could not be stopped: given PIDs did not die within timeout"


@pytest.mark.parametrize("slow_deaths, removed", [(0, True), (lab.REMOVE_ATTEMPTS - 1, True), (99, False)])
def test_lab_hosts_whose_processes_die_slowly_are_removed_on_a_later_try(monkeypatch, slow_deaths, removed):
    calls = []

    def podman(*args, **_kwargs):
        calls.append(args)
        failed = len(calls) <= slow_deaths
        return subprocess.CompletedProcess([], 125 if failed else 0, "", NOT_DEAD_YET if failed else "")

    monkeypatch.setattr(lab, "podman", podman)
    monkeypatch.setattr(lab.time, "sleep", lambda _s: None)
    if removed:
        lab.remove_containers(["pyfleet-lab-web1", "pyfleet-lab-lb1"])
        assert len(calls) == slow_deaths + 1
    else:
        with pytest.raises(PyfleetError, match=r"^removing lab hosts failed: .*did not die within timeout; .*lab.down"):
            lab.remove_containers(["pyfleet-lab-web1"])
        assert len(calls) == lab.REMOVE_ATTEMPTS
    assert all(c[:2] == ("rm", "-f") for c in calls)


def test_a_host_that_always_dies_at_boot_is_one_line(monkeypatch):
    FakeBoots(failures=lab.BOOT_ATTEMPTS).install(monkeypatch)
    the_lab = lab.Lab(Inventory(path=lab.ROOT / "inventory" / "lab", hosts={"lb1": {}}))
    with pytest.raises(PyfleetError, match=r"lab host lb1 stops as soon as it boots \(exit code 255.*fab lab.down"):
        lab.start_host(the_lab, "lb1", "img:tag", "ssh-ed25519 AAAA", log=lambda _: None)


def test_lab_hosts_get_the_unified_cgroup_hierarchy_only_on_a_hybrid_machine(monkeypatch, tmp_path):
    unified = tmp_path / "unified"
    unified.mkdir()
    monkeypatch.setattr(lab.os.path, "ismount", lambda path: str(path) == str(unified))
    assert lab.cgroup_options(unified) == ["-v", f"{unified}:{unified}:rw"]
    monkeypatch.setattr(lab.os.path, "ismount", lambda path: False)  # cgroup v2 only: nothing to add
    assert lab.cgroup_options(unified) == []


def test_lab_hosts_keep_a_fixed_address_the_lowest_free_one(monkeypatch, tmp_path):
    subnet = {"subnets": [{"subnet": "10.89.3.0/24", "gateway": "10.89.3.1"}]}
    answer = subprocess.CompletedProcess([], 0, json.dumps([subnet]), "")
    monkeypatch.setattr(lab, "podman", lambda *args, **kwargs: answer)
    monkeypatch.setattr(lab, "LAB_DIR", tmp_path)
    the_lab = lab.Lab(Inventory(path=lab.ROOT / "inventory" / "lab", hosts={"lb1": {}, "web1": {}}))
    assert lab.fixed_address(the_lab, "lb1") == "10.89.3.2"
    assert lab.fixed_address(the_lab, "web1") == "10.89.3.3"
    assert lab.fixed_address(the_lab, "lb1") == "10.89.3.2"  # a restarted or recreated host keeps it
    subnet["subnets"][0] = {"subnet": "10.89.4.0/24", "gateway": "10.89.4.1"}  # a new network: a new table
    answer = subprocess.CompletedProcess([], 0, json.dumps([subnet]), "")
    monkeypatch.setattr(lab, "podman", lambda *args, **kwargs: answer)
    assert lab.fixed_address(the_lab, "web1") == "10.89.4.2"


def test_molecule_scenarios_run_longest_first_and_every_one_runs(monkeypatch, tmp_path):
    for name in ("rabbitmq", "celery", "newone", "web", "common"):
        (tmp_path / "molecule" / name).mkdir(parents=True)
        (tmp_path / "molecule" / name / "molecule.yml").write_text("---\n")
    monkeypatch.setattr(suite, "ROOT", tmp_path)
    # A scenario without a measurement goes first (it may be long); then the measured order.
    assert suite.scenarios() == ["newone", "celery", "web", "rabbitmq", "common"]


def test_e2e_starts_first_and_runs_beside_the_other_phases_and_molecule_gets_one_lane_fewer(monkeypatch):
    import threading

    started, lanes = [], []
    # e2e must overlap the unit phase (it starts first) and still run when the first scenario does.
    with_unit, with_molecule = threading.Barrier(2, timeout=5), threading.Barrier(2, timeout=5)

    def step(name, *_commands, capture=False):
        started.append(name)
        if name == "e2e":
            with_unit.wait()
            with_molecule.wait()
        if name == "unit":
            with_unit.wait()
        if name == "molecule celery":
            with_molecule.wait()
        return suite.Result(name, "passed", 0.0)

    real_molecule = suite._molecule
    monkeypatch.setattr(suite, "_step", step)
    monkeypatch.setattr(suite, "_ensure_images", dict)
    monkeypatch.setattr(suite, "scenarios", lambda: ["celery", "redis"])
    monkeypatch.setattr(suite, "_molecule", lambda names, n: lanes.append(n) or real_molecule(names, n))
    monkeypatch.setenv("PYFLEET_MOLECULE_JOBS", "2")
    names = [r.name for r in suite.run()]
    assert lanes == [1]
    assert names[:3] == ["unit", "lint", "base images"]
    assert sorted(names[3:]) == ["e2e", "molecule celery", "molecule redis"]
    # One phase alone runs alone, with every lane.
    lanes.clear()
    monkeypatch.setattr(suite, "_step", lambda name, *c, capture=False: suite.Result(name, "passed", 0.0))
    assert [r.name for r in suite.run("molecule")] == ["base images", "molecule celery", "molecule redis"]
    assert lanes == [2]


def test_every_scenario_of_the_repository_is_measured():
    assert sorted(suite.scenarios()) == sorted(suite.LONGEST_FIRST)


def test_ansible_env_records_failures(monkeypatch):
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", "profile_tasks")
    env = ansible.ansible_env(mitogen=False)
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == "profile_tasks,pyfleet_failures"
    assert env["ANSIBLE_STRATEGY"] == "linear"


def test_playbook_by_name_must_exist():
    with pytest.raises(PyfleetError, match=r"no playbook .*nope\.yml; choose one of"):
        ansible.playbook_path("nope")
