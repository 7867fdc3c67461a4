"""pyfleet.lab with podman, ssh and the network replaced by recorders.

``FakePodman`` stands in for ``lab.podman``: it records every call (arguments and
keyword options) and answers like podman does (``network inspect`` JSON,
``container inspect`` JSON, ``ps`` names), raising the one-line PyfleetError of
pyfleet.podman when a command fails and ``check`` is set. ``run`` (ssh-keygen,
ssh) and ``socket.create_connection`` get stand-ins too; no container, network
or SSH connection is touched.
"""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from pyfleet import lab
from pyfleet.errors import PyfleetError
from pyfleet.inventory import Inventory
from pyfleet.shell import last_line

ED_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAA"
ED_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBB"
RSA_A = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAA"
SUBNET = {"subnet": "10.89.3.0/24", "gateway": "10.89.3.1"}


def done(rc=0, out="", err=""):
    return subprocess.CompletedProcess([], rc, out, err)


CONTAINER_COMMANDS = ("container", "exec", "logs", "start")  # they name one container: it must be there


class FakePodman:
    """Records podman calls; answers from ``answers`` (first matching argument prefix wins)."""

    def __init__(self):
        self.calls = []
        self.answers = []
        self.containers = {"pyfleet-mylab-web1", "pyfleet-mylab-lb1"}

    def on(self, *prefix, rc=0, out="", err=""):
        """Answer calls that start with ``prefix``; ``rc``, ``out``, ``err`` may be callables of the arguments."""
        self.answers.insert(0, (prefix, rc, out, err))
        return self

    def __call__(self, *args, check=True, what=None, fix="see podman's message", timeout=300, input_text=None):
        self.calls.append((args, {"check": check, "what": what, "fix": fix, "input_text": input_text}))
        if args[0] in CONTAINER_COMMANDS and not set(args) & self.containers:
            rc, out, err = 125, "", f"Error: no such container {args[-1]}\n"  # asked about a host it does not have
        else:
            rc, out, err = next((a[1:] for a in self.answers if args[: len(a[0])] == a[0]), (0, "", ""))
        out = out(args) if callable(out) else out
        rc = rc(args) if callable(rc) else rc
        err = err(args) if callable(err) else err
        if check and rc != 0:
            raise PyfleetError(f"{what or 'podman ' + args[0]} failed: {last_line(err)}; {fix}")
        return done(rc, out, err)

    def args(self, *prefix):
        return [a for a, _ in self.calls if a[: len(prefix)] == prefix]

    def options(self, *prefix):
        return [k for a, k in self.calls if a[: len(prefix)] == prefix]


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setattr(lab, "LAB_DIR", tmp_path / ".lab")
    monkeypatch.setattr(lab.time, "sleep", lambda _s: None)
    podman = FakePodman()
    monkeypatch.setattr(lab, "podman", podman)
    return podman


def make_lab(tmp_path, *hosts, **host_vars):
    inv_dir = tmp_path / "mylab"
    inv_dir.mkdir(exist_ok=True)
    return lab.Lab(Inventory(path=inv_dir, hosts={h: dict(host_vars) for h in hosts}, groups={"all": list(hosts)}))


def inspect_json(status="running", image="img:tag", network="pyfleet-mylab", ip="10.89.3.2"):
    nets = {network: {"IPAddress": ip}} if network else {}
    return json.dumps([{"State": {"Status": status}, "ImageName": image, "NetworkSettings": {"Networks": nets}}])


# -- names and paths --------------------------------------------------------------------------


def test_a_lab_is_named_after_its_inventory_and_keeps_its_state_under_lab_dir(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    state = tmp_path / ".lab" / "mylab"
    assert the_lab.name == the_lab.network == "pyfleet-mylab"
    assert the_lab.suite == "bookworm"
    assert the_lab.state_dir == state
    assert the_lab.key == state / "id_ed25519"
    assert the_lab.addresses_file == state / "addresses.json"
    assert the_lab.known_hosts == state / "known_hosts"
    assert the_lab.connection_file == state / "connection.yml"
    assert the_lab.container("web1") == "pyfleet-mylab-web1"
    assert lab.connection_path("inventory/mylab") == state / "connection.yml"
    assert lab.connection_path(Path("/x/y/mylab")) == state / "connection.yml"


def test_ssh_options_check_host_keys_against_the_lab_file_only(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    assert lab.ssh_options(the_lab) == [
        "-o",
        f"UserKnownHostsFile={the_lab.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=5",
    ]


def test_a_host_runs_bookworm_unless_its_inventory_says_otherwise(tmp_path):
    inv = Inventory(path=tmp_path, hosts={"web1": {}, "web2": {"lab_debian_suite": "trixie"}})
    assert lab._suite_of(inv, "web1") == "bookworm"
    assert lab._suite_of(inv, "web2") == "trixie"


# -- key, network, addresses --------------------------------------------------------------------


def fake_keygen(monkeypatch):
    ran = []

    def run(args, **kwargs):
        ran.append((args, kwargs))
        key = Path(args[args.index("-f") + 1])
        key.write_text("PRIVATE\n")
        key.with_suffix(".pub").write_text(f"{ED_A} {args[args.index('-C') + 1]}\n")
        return done()

    monkeypatch.setattr(lab, "run", run)
    return ran


def test_the_lab_key_is_generated_once_and_its_public_half_returned(fake, tmp_path, monkeypatch):
    ran = fake_keygen(monkeypatch)
    the_lab = make_lab(tmp_path, "web1")
    assert lab.ensure_key(the_lab) == f"{ED_A} pyfleet-mylab\n"
    assert ran == [
        (
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pyfleet-mylab", "-f", the_lab.key],
            {"what": "generating the lab SSH key", "fix": "install openssh-client (./bootstrap.sh)"},
        )
    ]
    the_lab.key.with_suffix(".pub").write_text(f"{ED_B} kept\n")
    assert lab.ensure_key(the_lab) == f"{ED_B} kept\n"  # an existing key is kept
    assert len(ran) == 1


def test_the_lab_network_is_created_only_when_it_does_not_exist(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("network", "exists", rc=0)
    lab.ensure_network(the_lab)
    assert [a for a, _ in fake.calls] == [("network", "exists", "pyfleet-mylab")]
    assert fake.calls[0][1]["check"] is False
    fake.calls.clear()
    fake.on("network", "exists", rc=1)
    lab.ensure_network(the_lab)
    assert [a for a, _ in fake.calls] == [
        ("network", "exists", "pyfleet-mylab"),
        ("network", "create", "pyfleet-mylab"),
    ]
    assert fake.calls[1][1]["what"] == "creating network pyfleet-mylab"


def test_fixed_addresses_are_stored_per_lab_and_skip_the_gateway(fake, tmp_path):
    the_lab = make_lab(tmp_path, "lb1", "web1")
    fake.on("network", "inspect", out=json.dumps([{"subnets": [{"subnet": "10.89.3.0/24", "gateway": "10.89.3.2"}]}]))
    assert lab.fixed_address(the_lab, "lb1") == "10.89.3.1"
    assert lab.fixed_address(the_lab, "web1") == "10.89.3.3"  # .2 is the gateway
    assert fake.args("network") == [("network", "inspect", "pyfleet-mylab")] * 2
    assert fake.options("network")[0]["what"] == "reading network pyfleet-mylab"
    text = the_lab.addresses_file.read_text()
    assert text == json.dumps(
        {"subnet": "10.89.3.0/24", "hosts": {"lb1": "10.89.3.1", "web1": "10.89.3.3"}}, indent=1, sort_keys=True
    )


def test_a_stored_address_is_kept_and_the_file_left_alone(fake, tmp_path):
    the_lab = make_lab(tmp_path, "lb1", "web1")
    the_lab.state_dir.mkdir(parents=True)
    the_lab.addresses_file.write_text(json.dumps({"subnet": "10.89.3.0/24", "hosts": {"web1": "10.89.3.7"}}))
    fake.on("network", "inspect", out=json.dumps([{"subnets": [SUBNET]}]))
    the_lab.addresses_file.chmod(0o444)
    try:
        assert lab.fixed_address(the_lab, "web1") == "10.89.3.7"
    finally:
        the_lab.addresses_file.chmod(0o644)
    assert lab.fixed_address(the_lab, "lb1") == "10.89.3.2"
    assert json.loads(the_lab.addresses_file.read_text())["hosts"] == {"web1": "10.89.3.7", "lb1": "10.89.3.2"}


def test_a_subnet_without_a_gateway_hands_out_its_first_address(fake, tmp_path):
    the_lab = make_lab(tmp_path, "lb1")
    fake.on("network", "inspect", out=json.dumps([{"subnets": [{"subnet": "10.89.5.0/24"}]}]))
    assert lab.fixed_address(the_lab, "lb1") == "10.89.5.1"


def test_a_full_lab_network_is_one_line(fake, tmp_path):
    the_lab = make_lab(tmp_path, "lb1", "web1")
    fake.on("network", "inspect", out=json.dumps([{"subnets": [{"subnet": "10.89.6.0/30", "gateway": "10.89.6.1"}]}]))
    assert lab.fixed_address(the_lab, "lb1") == "10.89.6.2"
    with pytest.raises(PyfleetError) as caught:
        lab.fixed_address(the_lab, "web1")
    assert str(caught.value) == ("lab network pyfleet-mylab has no free address for web1; fab lab.down && fab lab.up")
    assert json.loads(the_lab.addresses_file.read_text())["hosts"] == {"lb1": "10.89.6.2"}


# -- container state ---------------------------------------------------------------------------


def test_container_state_is_status_and_image_or_nothing(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("container", "inspect", rc=125, err="Error: no such container")
    assert lab.container_state(the_lab, "web1") == (None, None)
    assert fake.calls[-1] == (("container", "inspect", "pyfleet-mylab-web1"), fake.calls[-1][1])
    assert fake.calls[-1][1]["check"] is False
    fake.on("container", "inspect", out=inspect_json("exited", "localhost/pyfleet-base:bookworm-1"))
    assert lab.container_state(the_lab, "web1") == ("exited", "localhost/pyfleet-base:bookworm-1")
    fake.on("container", "inspect", out=json.dumps([{"State": {"Status": "running"}}]))
    assert lab.container_state(the_lab, "web1") == ("running", None)


def test_a_host_address_is_read_from_its_lab_network(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("container", "inspect", out=inspect_json(ip="10.89.3.9"))
    assert lab.address(the_lab, "web1") == "10.89.3.9"
    assert fake.args() == [("container", "inspect", "pyfleet-mylab-web1")]
    assert fake.calls[0][1]["check"] is True


@pytest.mark.parametrize("network, ip", [("podman", "10.88.0.4"), ("pyfleet-mylab", ""), (None, None)])
def test_a_host_without_an_address_on_the_lab_network_is_one_line(fake, tmp_path, network, ip):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("container", "inspect", out=inspect_json(network=network, ip=ip))
    with pytest.raises(PyfleetError) as caught:
        lab.address(the_lab, "web1")
    assert str(caught.value) == (
        "lab host web1 has no address on network pyfleet-mylab; run fab lab.down, then fab lab.up"
    )


def test_cgroup_options_look_at_the_machine_unified_hierarchy_by_default(monkeypatch):
    asked = []
    monkeypatch.setattr(lab.os.path, "ismount", lambda path: asked.append(path) or True)
    assert lab.cgroup_options() == ["-v", "/sys/fs/cgroup/unified:/sys/fs/cgroup/unified:rw"]
    assert asked == [Path("/sys/fs/cgroup/unified")]


def test_a_host_is_created_with_its_name_fixed_address_systemd_net_admin_and_the_lab_label(fake, tmp_path, monkeypatch):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("network", "inspect", out=json.dumps([{"subnets": [SUBNET]}]))
    monkeypatch.setattr(lab, "cgroup_options", lambda: ["-v", "/u:/u:rw"])
    lab._create(the_lab, "web1", "localhost/pyfleet-base:bookworm-abc")
    run_args = fake.args("run")
    assert run_args == [
        (
            "run",
            "-d",
            "--name",
            "pyfleet-mylab-web1",
            "--hostname",
            "web1",
            "--network",
            "pyfleet-mylab",
            "--ip",
            "10.89.3.2",
            "--systemd=always",
            "--cap-add=NET_ADMIN",
            "-v",
            "/u:/u:rw",
            "--label",
            "pyfleet.lab=pyfleet-mylab",
            "localhost/pyfleet-base:bookworm-abc",
            "/sbin/init",
        )
    ]
    opts = fake.options("run")[0]
    assert opts["what"] == "starting lab host web1"
    assert opts["fix"] == "check `podman info`, then run fab lab.up again"
    assert opts["check"] is True


def test_a_failed_create_is_one_line(fake, tmp_path, monkeypatch):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("network", "inspect", out=json.dumps([{"subnets": [SUBNET]}]))
    fake.on("run", rc=125, err="Error: image not known\n")
    monkeypatch.setattr(lab, "cgroup_options", list)
    with pytest.raises(PyfleetError) as caught:
        lab._create(the_lab, "web1", "img:tag")
    assert str(caught.value) == (
        "starting lab host web1 failed: Error: image not known; check `podman info`, then run fab lab.up again"
    )


@pytest.mark.parametrize(
    "rc, out, sees",
    [
        (0, "/sys/fs/cgroup/unified /etc/hosts ", True),
        (0, "/etc/hosts /sys/fs/cgroup/unified", True),
        (0, "/sys/fs/cgroup/unified2 /etc/hosts", False),
        (0, "", False),
        (125, "", False),
    ],
)
def test_a_host_sees_the_unified_cgroup_only_when_it_is_among_its_mounts(fake, tmp_path, rc, out, sees):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("container", "inspect", rc=rc, out=out)
    assert lab._sees_unified_cgroup(the_lab, "web1") is sees
    assert fake.args() == [
        ("container", "inspect", "--format", "{{range .Mounts}}{{.Destination}} {{end}}", "pyfleet-mylab-web1")
    ]


@pytest.mark.parametrize(
    "rc, out, has",
    [
        (0, "CAP_CHOWN CAP_NET_ADMIN CAP_SETUID", True),
        (0, "CAP_CHOWN CAP_NET_RAW", False),
        (0, "CAP_NET_ADMINX", False),
        (125, "", True),  # cannot tell: say nothing
    ],
)
def test_net_admin_is_read_from_the_container_capabilities(fake, tmp_path, rc, out, has):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("container", "inspect", rc=rc, out=out)
    assert lab._has_net_admin(the_lab, "web1") is has
    assert fake.args() == [
        ("container", "inspect", "--format", "{{range .EffectiveCaps}}{{.}} {{end}}", "pyfleet-mylab-web1")
    ]


def test_why_a_host_stopped_is_its_exit_code_and_last_log_line(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("container", "inspect", out="255 \n")
    fake.on("logs", out="booting\nFailed to mount\n", err="Freezing execution.\n\n")
    assert lab._why_stopped(the_lab, "web1") == "exit code 255, last log line: Freezing execution."
    assert fake.args() == [
        ("container", "inspect", "--format", "{{.State.ExitCode}} {{.State.Error}}", "pyfleet-mylab-web1"),
        ("logs", "--tail", "5", "pyfleet-mylab-web1"),
    ]
    assert [k["check"] for k in fake.options()] == [False, False]


def test_why_a_gone_host_stopped_says_what_is_unknown(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("container", "inspect", rc=125, out="")
    fake.on("logs", rc=125, out="", err="")
    assert lab._why_stopped(the_lab, "web1") == "exit code ?, last log line: no output"


def test_the_login_setup_runs_as_root_in_the_container_with_the_key_on_stdin(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("exec", rc=1, err="boom")
    assert lab._install_key(the_lab, "web1", ED_A).returncode == 1  # not raised: start_host decides
    assert fake.args() == [("exec", "-i", "pyfleet-mylab-web1", "sh", "-c", lab.LOGIN_SETUP)]
    assert fake.options()[0]["input_text"] == ED_A
    assert fake.options()[0]["check"] is False


# -- start_host -------------------------------------------------------------------------------


class Host:
    """One container as start_host sees it: its state answers and the login setup's answers."""

    def __init__(self, fake, status, image="img:tag", logins=((0, ""),), mounts="", caps="CAP_NET_ADMIN"):
        self.status, self.image, self.logins = status, image, list(logins)
        fake.on("container", "inspect", rc=self.inspect_rc, out=self.inspect)
        fake.on("container", "inspect", "--format", "{{range .Mounts}}{{.Destination}} {{end}}", out=mounts)
        fake.on("container", "inspect", "--format", "{{range .EffectiveCaps}}{{.}} {{end}}", out=caps)
        fake.on("exec", "-i", rc=self.login_rc, err=self.login_err)
        fake.on("start", out=self.start)
        fake.on("run", out=self.create)
        fake.on("network", "inspect", out=json.dumps([{"subnets": [SUBNET]}]))
        self.answer = None

    def inspect_rc(self, _args):
        return 0 if self.status else 125

    def inspect(self, _args):
        return inspect_json(self.status, self.image) if self.status else ""

    def login_rc(self, _args):
        self.answer = self.logins.pop(0) if len(self.logins) > 1 else self.logins[0]
        return self.answer[0]

    def login_err(self, _args):
        return self.answer[1]

    def start(self, _args):
        self.status = "running"
        return ""

    def create(self, _args):
        self.status = "running"
        return "0123abcd\n"


def test_a_running_host_on_the_current_image_is_left_running_and_its_login_set_up(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "cgroup_options", list)
    Host(fake, "running")
    said = []
    assert lab.start_host(make_lab(tmp_path, "web1"), "web1", "img:tag", ED_A, log=said.append) is False
    assert said == []
    assert not fake.args("run") and not fake.args("start")
    assert fake.args("exec") == [("exec", "-i", "pyfleet-mylab-web1", "sh", "-c", lab.LOGIN_SETUP)]


def test_a_running_host_on_an_older_image_or_without_the_unified_cgroup_is_told_so(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "cgroup_options", lambda: ["-v", "/sys/fs/cgroup/unified:/sys/fs/cgroup/unified:rw"])
    Host(fake, "running", image="img:old", mounts="/etc/hosts")
    said = []
    assert lab.start_host(make_lab(tmp_path, "web1"), "web1", "img:new", ED_A, log=said.append) is False
    assert said == [
        "web1: runs an older base image (img:old); fab lab.down && fab lab.up rebuilds it",
        "web1: was created without the unified cgroup hierarchy (crashed units restart late); "
        "fab lab.down && fab lab.up recreates it",
    ]


def test_a_running_host_with_the_unified_cgroup_and_no_image_name_is_not_told_anything(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "cgroup_options", lambda: ["-v", "/sys/fs/cgroup/unified:/sys/fs/cgroup/unified:rw"])
    Host(fake, "running", image=None, mounts="/sys/fs/cgroup/unified")
    said = []
    assert lab.start_host(make_lab(tmp_path, "web1"), "web1", "img:new", ED_A, log=said.append) is False
    assert said == []


def test_a_running_host_without_net_admin_is_told_so(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "cgroup_options", list)
    Host(fake, "running", caps="CAP_CHOWN CAP_NET_RAW")
    said = []
    assert lab.start_host(make_lab(tmp_path, "web1"), "web1", "img:tag", ED_A, log=said.append) is False
    assert said == [
        "web1: was created without the NET_ADMIN capability (a host firewall cannot load); "
        "fab lab.down && fab lab.up recreates it"
    ]
    assert fake.args("container", "inspect", "--format")[0][-1] == "pyfleet-mylab-web1"


def test_a_stopped_host_is_started_not_created(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "cgroup_options", list)
    Host(fake, "exited", caps="")
    said = []
    assert lab.start_host(make_lab(tmp_path, "web1"), "web1", "img:tag", ED_A, log=said.append) is True
    assert said == []  # not running: no capability hint
    assert fake.args("start") == [("start", "pyfleet-mylab-web1")]
    assert fake.options("start")[0]["what"] == "starting lab host web1"
    assert fake.options("start")[0]["fix"] == "run fab lab.down, then fab lab.up"
    assert not fake.args("run")
    assert not fake.args("container", "inspect", "--format")


def test_a_missing_host_is_created(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "cgroup_options", list)
    Host(fake, None)
    assert lab.start_host(make_lab(tmp_path, "web1"), "web1", "img:tag", ED_A, log=print) is True
    assert len(fake.args("run")) == 1 and fake.args("run")[0][-2:] == ("img:tag", "/sbin/init")
    assert not fake.args("start")


def test_a_login_setup_that_fails_while_the_host_boots_is_tried_again_each_second(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "cgroup_options", list)
    slept = []
    monkeypatch.setattr(lab.time, "sleep", slept.append)
    Host(fake, "running", logins=[(1, "Failed to connect to bus"), (1, "still booting"), (0, "")])
    assert lab.start_host(make_lab(tmp_path, "web1"), "web1", "img:tag", ED_A, log=print) is False
    assert len(fake.args("exec")) == 3
    assert [k["input_text"] for k in fake.options("exec")] == [ED_A] * 3
    assert slept == [1, 1]
    assert not fake.args("rm")


def test_a_login_setup_that_keeps_failing_on_a_running_host_gives_up_after_exec_retries(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "cgroup_options", list)
    slept = []
    monkeypatch.setattr(lab.time, "sleep", slept.append)
    Host(fake, "running", logins=[(1, "useradd: cannot lock /etc/passwd\n")])
    with pytest.raises(PyfleetError) as caught:
        lab.start_host(make_lab(tmp_path, "web1"), "web1", "img:tag", ED_A, log=print)
    assert str(caught.value) == (
        "setting up the lab login (deploy) on web1 failed: useradd: cannot lock /etc/passwd; "
        "run fab lab.down, then fab lab.up"
    )
    assert len(fake.args("exec")) == 1 + lab.EXEC_RETRIES
    assert slept == [1] * lab.EXEC_RETRIES
    assert not fake.args("rm")


def test_a_host_that_dies_at_boot_is_diagnosed_removed_and_created_again(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "cgroup_options", list)
    slept = []
    monkeypatch.setattr(lab.time, "sleep", slept.append)
    host = Host(fake, None)
    dead = {"n": 0}

    def login_rc(_args):
        dead["n"] += 1
        if dead["n"] == 1:
            host.status = "exited"
            host.answer = (1, "Error: cannot exec in a stopped container")
            return 1
        host.answer = (0, "")
        return 0

    host.login_rc = login_rc
    fake.on("exec", "-i", rc=login_rc, err=host.login_err)
    fake.on("container", "inspect", "--format", "{{.State.ExitCode}} {{.State.Error}}", out="255 ")
    fake.on("logs", out="Freezing execution.\n")
    fake.on("rm", out=lambda _a: setattr(host, "status", None) or "")
    said = []
    assert lab.start_host(make_lab(tmp_path, "web1"), "web1", "img:tag", ED_A, log=said.append) is True
    assert said == [
        "web1: the container's init is not running (exit code 255, last log line: Freezing execution.); "
        "creating it once more"
    ]
    assert fake.args("rm") == [("rm", "-f", "--ignore", "-t", "0", "pyfleet-mylab-web1")]
    assert len(fake.args("run")) == 2
    assert slept == [lab.BOOT_RETRY_PAUSE]


def test_a_host_podman_still_calls_running_after_runc_said_stopped_is_recreated_without_retries(
    fake, tmp_path, monkeypatch
):
    """runc's "stopped" outweighs podman's stale "running": no setup retries, the host is created anew."""
    monkeypatch.setattr(lab, "cgroup_options", list)
    host = Host(fake, "running", logins=[(1, "Error: OCI runtime error: cannot exec in a stopped container"), (0, "")])
    fake.on("container", "inspect", "--format", "{{.State.ExitCode}} {{.State.Error}}", out="0 ")
    fake.on("logs", out="")
    fake.on("rm", out=lambda _a: setattr(host, "status", None) or "")
    said = []
    assert lab.start_host(make_lab(tmp_path, "web1"), "web1", "img:tag", ED_A, log=said.append) is True
    assert said == [
        "web1: the container's init is not running (exit code 0, last log line: no output; "
        "podman still said running); creating it once more"
    ]
    assert len(fake.args("exec")) == 2  # one try on the dead container, one on the new one
    assert len(fake.args("run")) == 1


def test_a_host_whose_init_dies_during_the_setup_retries_is_created_again(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "cgroup_options", list)
    host = Host(fake, "running", logins=[(1, "Failed to connect to bus"), (1, "Failed to connect to bus"), (0, "")])
    looks = {"n": 0}

    def inspect(args):
        looks["n"] += 1
        if looks["n"] == 3:  # the look after the first retry: the init died meanwhile
            host.status = "exited"
        return inspect_json(host.status, host.image) if host.status else ""

    fake.on("container", "inspect", "pyfleet-mylab-web1", rc=host.inspect_rc, out=inspect)
    fake.on("container", "inspect", "--format", "{{.State.ExitCode}} {{.State.Error}}", out="137 ")
    fake.on("logs", out="Killed\n")
    fake.on("rm", out=lambda _a: setattr(host, "status", None) or "")
    said = []
    assert lab.start_host(make_lab(tmp_path, "web1"), "web1", "img:tag", ED_A, log=said.append) is True
    assert said == [
        "web1: the container's init is not running (exit code 137, last log line: Killed); creating it once more"
    ]
    assert len(fake.args("exec")) == 3 and len(fake.args("run")) == 1


def test_a_failed_removal_before_the_new_try_is_left_to_the_create_to_report(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "cgroup_options", list)
    Host(fake, "exited", logins=[(1, "Error: cannot exec in a stopped container")])
    fake.on("container", "inspect", "--format", "{{.State.ExitCode}} {{.State.Error}}", out="1 ")
    fake.on("logs", out="")
    fake.on("rm", rc=125, err="Error: given PIDs did not die within timeout\n")
    fake.on("run", rc=125, err='Error: the container name "pyfleet-mylab-web1" is already in use\n')
    with pytest.raises(PyfleetError) as caught:
        lab.start_host(make_lab(tmp_path, "web1"), "web1", "img:tag", ED_A, log=lambda _: None)
    assert str(caught.value) == (
        'starting lab host web1 failed: Error: the container name "pyfleet-mylab-web1" is already in use; '
        "check `podman info`, then run fab lab.up again"
    )
    assert len(fake.args("rm")) == lab.REMOVE_ATTEMPTS


def test_a_stopped_host_that_never_boots_is_one_line_after_boot_attempts(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(lab, "cgroup_options", list)
    host = Host(fake, "exited", logins=[(1, "Error: cannot exec in a stopped container")])
    host.start = lambda _a: ""  # podman start returns, the init dies at once
    fake.on("start", out=host.start)
    host.create = lambda _a: setattr(host, "status", "exited") or ""
    fake.on("run", out=host.create)
    fake.on("container", "inspect", "--format", "{{.State.ExitCode}} {{.State.Error}}", out="1 ")
    fake.on("logs", out="", err="Failed to allocate manager object\n")
    fake.on("rm", out=lambda _a: setattr(host, "status", None) or "")
    said = []
    with pytest.raises(PyfleetError) as caught:
        lab.start_host(make_lab(tmp_path, "web1"), "web1", "img:tag", ED_A, log=said.append)
    assert str(caught.value) == (
        "lab host web1 stops as soon as it boots (exit code 1, last log line: Failed to allocate manager object); "
        "check `podman info`, free memory/disk and fs.inotify.max_user_instances (./bootstrap.sh sets it), "
        "then fab lab.down && fab lab.up"
    )
    assert len(fake.args("start")) == 1 and len(fake.args("run")) == lab.BOOT_ATTEMPTS - 1
    assert len(said) == lab.BOOT_ATTEMPTS - 1 and len(fake.args("rm")) == lab.BOOT_ATTEMPTS - 1
    assert len(fake.args("exec")) == lab.BOOT_ATTEMPTS  # a stopped container: no retries of the setup


# -- waiting for sshd, host keys -----------------------------------------------------------------


class Clock:
    def __init__(self, monkeypatch):
        self.now = 1000.0
        self.slept = []
        monkeypatch.setattr(lab.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(lab.time, "sleep", self.sleep)

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


class Sock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def connections(monkeypatch, answers):
    """socket.create_connection: each call takes the next answer (an exception raised, else connected)."""
    calls = []

    def create_connection(address, timeout):
        calls.append((address, timeout))
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return Sock()

    monkeypatch.setattr(lab.socket, "create_connection", create_connection)
    return calls


def test_waiting_for_port_22_returns_once_it_answers(fake, tmp_path, monkeypatch):
    clock = Clock(monkeypatch)
    calls = connections(monkeypatch, [ConnectionRefusedError("refused"), ConnectionRefusedError("refused"), None])
    lab.wait_for_port(make_lab(tmp_path, "web1"), "web1", "10.89.3.2")
    assert calls == [(("10.89.3.2", 22), 2)] * 3
    assert clock.slept == [0.3, 0.3]


def test_a_host_that_never_listens_on_port_22_is_one_line(fake, tmp_path, monkeypatch):
    clock = Clock(monkeypatch)
    calls = connections(monkeypatch, [OSError("[Errno 113] No route to host")])
    with pytest.raises(PyfleetError) as caught:
        lab.wait_for_port(make_lab(tmp_path, "web1"), "web1", "10.89.3.2", timeout=3)
    assert str(caught.value) == (
        "lab host web1 (10.89.3.2) does not listen on port 22 after 3 s ([Errno 113] No route to host); "
        "look at `podman logs pyfleet-mylab-web1`, then fab lab.down && fab lab.up"
    )
    assert 10 <= len(calls) <= 11 and clock.slept == [0.3] * len(calls)  # float steps: 0.3 * 10 may fall short of 3


def test_a_host_that_is_never_asked_says_no_answer(fake, tmp_path, monkeypatch):
    Clock(monkeypatch)
    connections(monkeypatch, [None])
    with pytest.raises(PyfleetError, match=r"after 0 s \(no answer\)"):
        lab.wait_for_port(make_lab(tmp_path, "web1"), "web1", "10.89.3.2", timeout=0)


def test_the_default_wait_is_a_minute(fake, tmp_path, monkeypatch):
    clock = Clock(monkeypatch)
    connections(monkeypatch, [OSError("refused")])
    with pytest.raises(PyfleetError, match="after 60 s"):
        lab.wait_for_port(make_lab(tmp_path, "web1"), "web1", "10.89.3.2")
    assert clock.now == pytest.approx(1060.0, abs=0.31)


def test_host_keys_are_read_inside_the_container_sorted_without_comments(fake, tmp_path):
    fake.on("exec", out=f"{RSA_A} root@build\n\n{ED_B}\ngarbage\n{ED_A} root@x extra\n")
    assert lab.read_host_keys(make_lab(tmp_path, "web1"), "web1") == [ED_A, ED_B, RSA_A]
    assert fake.args() == [("exec", "pyfleet-mylab-web1", "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub")]
    assert fake.options()[0]["what"] == "reading the SSH host keys of lab host web1"
    assert fake.options()[0]["fix"] == "fab lab.down && fab lab.up"
    assert fake.options()[0]["check"] is True


def test_a_host_without_host_keys_is_one_line(fake, tmp_path):
    fake.on("exec", out="\nnokey\n")
    with pytest.raises(PyfleetError) as caught:
        lab.read_host_keys(make_lab(tmp_path, "web1"), "web1")
    assert str(caught.value) == "lab host web1 has no SSH host keys in /etc/ssh; fab lab.down && fab lab.up"


def test_known_hosts_text_has_a_header_and_one_line_per_key_hosts_sorted():
    text = lab.known_hosts_text({"web2": ("10.89.3.3", [ED_B]), "web1": ("10.89.3.2", [ED_A, RSA_A])})
    assert text == lab.KNOWN_HOSTS_HEADER + (f"10.89.3.2 {ED_A} web1\n10.89.3.2 {RSA_A} web1\n10.89.3.3 {ED_B} web2\n")
    assert lab.known_hosts_text({}) == lab.KNOWN_HOSTS_HEADER


def test_reading_known_hosts_skips_comments_and_malformed_lines(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    assert lab.read_known_hosts(the_lab) == {}
    the_lab.state_dir.mkdir(parents=True)
    the_lab.known_hosts.write_text(
        f"# ssh-ed25519 AAAA web9\n# 10.0.0.9 ssh-ed25519 AAAA web9\n10.89.3.2 {ED_A} web1\n10.89.3.2 {ED_B}\n"
        f"10.89.3.2 {RSA_A} web1\n10.89.3.3 {ED_B} web2 extra\n"
    )
    assert lab.read_known_hosts(the_lab) == {"web1": ("10.89.3.2", [ED_A, RSA_A])}


def test_a_temporary_file_left_by_a_crash_is_replaced(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    the_lab.state_dir.mkdir(parents=True)
    (the_lab.state_dir / "known_hosts.tmp").write_text("half")
    (the_lab.state_dir / "connection.tmp").write_text("half")
    lab.write_known_hosts(the_lab, {"web1": ("10.89.3.2", [ED_A])})
    lab.write_connection_file(the_lab, {"web1": "10.89.3.2"})
    assert sorted(p.name for p in the_lab.state_dir.iterdir()) == ["connection.yml", "known_hosts"]


def test_known_hosts_is_written_whole_into_a_new_state_dir(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    assert lab.write_known_hosts(the_lab, {"web1": ("10.89.3.2", [ED_A])}) is True
    assert the_lab.known_hosts.read_text() == lab.KNOWN_HOSTS_HEADER + f"10.89.3.2 {ED_A} web1\n"
    assert sorted(p.name for p in the_lab.state_dir.iterdir()) == ["known_hosts"]
    assert lab.write_known_hosts(the_lab, {"web1": ("10.89.3.2", [ED_A])}) is False


# -- wait_for_ssh ----------------------------------------------------------------------------------


def fake_ssh(monkeypatch, answers):
    ran = []

    def run(args, **kwargs):
        ran.append((args, kwargs))
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return done(*answer)

    monkeypatch.setattr(lab, "run", run)
    return ran


def test_ssh_is_tried_as_deploy_with_the_lab_key_and_sudo_until_it_works(fake, tmp_path, monkeypatch):
    the_lab = make_lab(tmp_path, "web1")
    clock = Clock(monkeypatch)
    connections(monkeypatch, [None])
    ran = fake_ssh(monkeypatch, [(255, "", "Permission denied (publickey).\n"), (0, "", "")])
    lab.wait_for_ssh(the_lab, "web1", "10.89.3.2")
    assert (
        ran
        == [
            (
                [
                    "ssh",
                    *lab.ssh_options(the_lab),
                    "-o",
                    "BatchMode=yes",
                    "-i",
                    the_lab.key,
                    "deploy@10.89.3.2",
                    "sudo -n true",
                ],
                {"what": "ssh", "fix": "", "check": False, "timeout": 15},
            )
        ]
        * 2
    )
    assert clock.slept == [0.5]


def test_ssh_that_never_lets_deploy_in_is_one_line_with_its_last_word(fake, tmp_path, monkeypatch):
    Clock(monkeypatch)
    connections(monkeypatch, [None])
    ran = fake_ssh(monkeypatch, [(255, "", "deploy@10.89.3.2: Permission denied (publickey).\n")])
    with pytest.raises(PyfleetError) as caught:
        lab.wait_for_ssh(make_lab(tmp_path, "web1"), "web1", "10.89.3.2", timeout=5)
    assert str(caught.value) == (
        "lab host web1 (10.89.3.2) does not let deploy in over SSH with sudo "
        "(deploy@10.89.3.2: Permission denied (publickey).); "
        "look at `podman logs pyfleet-mylab-web1`, then fab lab.down && fab lab.up"
    )
    assert len(ran) == 10


def test_ssh_failing_without_a_word_reports_its_exit_code(fake, tmp_path, monkeypatch):
    Clock(monkeypatch)
    connections(monkeypatch, [None])
    fake_ssh(monkeypatch, [(1, "", "  \n")])
    with pytest.raises(PyfleetError, match=r"with sudo \(ssh exit code 1\); look at"):
        lab.wait_for_ssh(make_lab(tmp_path, "web1"), "web1", "10.89.3.2", timeout=1)


@pytest.mark.parametrize(
    "stderr",
    ["Host key verification failed.\n", "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nOffending key\n"],
)
def test_a_wrong_host_key_stops_the_wait_at_once(fake, tmp_path, monkeypatch, stderr):
    clock = Clock(monkeypatch)
    connections(monkeypatch, [None])
    ran = fake_ssh(monkeypatch, [(255, "", stderr)])
    with pytest.raises(PyfleetError) as caught:
        lab.wait_for_ssh(make_lab(tmp_path, "web1"), "web1", "10.89.3.2")
    assert len(ran) == 1 and clock.slept == []
    assert f"({last_line(stderr)})" in str(caught.value)


def test_ssh_is_not_tried_while_port_22_is_closed(fake, tmp_path, monkeypatch):
    clock = Clock(monkeypatch)
    calls = connections(monkeypatch, [ConnectionRefusedError("[Errno 111] Connection refused")])
    ran = fake_ssh(monkeypatch, [(0, "", "")])
    with pytest.raises(PyfleetError) as caught:
        lab.wait_for_ssh(make_lab(tmp_path, "web1"), "web1", "10.89.3.2", timeout=2)
    assert ran == [] and len(calls) == 4 and clock.slept == [0.5] * 4
    assert "with sudo ([Errno 111] Connection refused); look at" in str(caught.value)
    assert calls[0] == (("10.89.3.2", 22), 2)


def test_the_default_ssh_wait_is_a_minute_and_nothing_means_no_answer(fake, tmp_path, monkeypatch):
    clock = Clock(monkeypatch)
    connections(monkeypatch, [None])
    clock.now = 1000.0
    monkeypatch.setattr(lab.time, "monotonic", lambda: clock.now)
    fake_ssh(monkeypatch, [(0, "", "")])
    lab.wait_for_ssh(make_lab(tmp_path, "web1"), "web1", "10.89.3.2")  # works at once
    ticks = iter([0.0, 59.9, 60.1])
    monkeypatch.setattr(lab.time, "monotonic", lambda: next(ticks))
    connections(monkeypatch, [OSError("x")])
    with pytest.raises(PyfleetError, match=r"with sudo \(x\)"):
        lab.wait_for_ssh(make_lab(tmp_path, "web1"), "web1", "10.89.3.2")
    monkeypatch.setattr(lab.time, "monotonic", lambda: 0.0 if not clock.slept else 99.0)
    clock.slept.clear()
    with pytest.raises(PyfleetError, match=r"with sudo \(no answer\)"):
        lab.wait_for_ssh(make_lab(tmp_path, "web1"), "web1", "10.89.3.2", timeout=0)


# -- connection file -----------------------------------------------------------------------------


def test_the_connection_file_is_exactly_the_hosts_and_the_lab_login(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1", "lb1")
    the_lab.state_dir.mkdir(parents=True)
    assert lab.write_connection_file(the_lab, {"web1": "10.89.3.3", "lb1": "10.89.3.2"}) is True
    text = the_lab.connection_file.read_text()
    assert text.startswith(
        "# Written by `fab lab.up`: how to reach the lab hosts. Regenerated on each run.\n"
        "all:\n  hosts:\n    lb1:\n      ansible_host: 10.89.3.2\n    web1:\n      ansible_host: 10.89.3.3\n"
        "  vars:\n    ansible_user: deploy\n    ansible_become: true\n"
    )
    data = yaml.safe_load(text)
    assert data == {
        "all": {
            "hosts": {"lb1": {"ansible_host": "10.89.3.2"}, "web1": {"ansible_host": "10.89.3.3"}},
            "vars": {
                "ansible_user": "deploy",
                "ansible_become": True,
                "ansible_ssh_private_key_file": str(the_lab.key),
                "ansible_ssh_common_args": " ".join(lab.ssh_options(the_lab)),
                "ansible_python_interpreter": "/usr/bin/python3",
            },
        }
    }
    assert list(data["all"]["vars"]) == [
        "ansible_user",
        "ansible_become",
        "ansible_ssh_private_key_file",
        "ansible_ssh_common_args",
        "ansible_python_interpreter",
    ]  # as written, not sorted
    assert sorted(p.name for p in the_lab.state_dir.iterdir()) == ["connection.yml"]
    assert lab.write_connection_file(the_lab, {"web1": "10.89.3.4"}) is True
    assert lab.load_connection(the_lab.inventory) == {"web1": "10.89.3.4"}


def test_load_connection_is_empty_without_a_file_or_with_an_empty_one(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    assert lab.load_connection(the_lab.inventory) == {}
    the_lab.state_dir.mkdir(parents=True)
    the_lab.connection_file.write_text("")
    assert lab.load_connection(the_lab.inventory) == {}
    the_lab.connection_file.write_text("other: 1\n")
    assert lab.load_connection(the_lab.inventory) == {}
    the_lab.connection_file.write_text("all:\n  vars: {}\n")
    assert lab.load_connection(the_lab.inventory) == {}


# -- up, down, remove_host, ssh_command -------------------------------------------------------------


class World:
    """A podman with some containers, ssh-keygen, ssh and sshd, all stand-ins, for up and down."""

    def __init__(self, fake, monkeypatch, running=()):
        self.fake = fake
        self.containers = {name: {"status": "running", "ip": None} for name in running}
        self.next_ip = 2
        self.images = []
        fake.on("container", "inspect", rc=self.inspect_rc, out=self.inspect)
        fake.on("container", "inspect", "--format", "{{range .Mounts}}{{.Destination}} {{end}}", out="")
        fake.on("container", "inspect", "--format", "{{range .EffectiveCaps}}{{.}} {{end}}", out="CAP_NET_ADMIN")
        fake.on("network", "exists", rc=1)
        fake.on("network", "inspect", out=json.dumps([{"subnets": [SUBNET]}]))
        fake.on("run", out=self.run)
        fake.on("exec", "-i", out="")
        fake.on("exec", "pyfleet-mylab-web1", out=f"{ED_A} root@web1\n")
        fake.on("exec", "pyfleet-mylab-lb1", out=f"{RSA_A} root@lb1\n{ED_B} root@lb1\n")
        monkeypatch.setattr(lab, "cgroup_options", list)
        monkeypatch.setattr(lab.image, "ensure_image", self.ensure_image)
        self.ssh = []
        self.keygen = fake_keygen(monkeypatch)
        keygen = lab.run

        def run(args, **kwargs):
            if args[0] == "ssh":
                self.ssh.append(args[-2])
                return done()
            return keygen(args, **kwargs)

        monkeypatch.setattr(lab, "run", run)
        self.ports = connections(monkeypatch, [None])

    def ensure_image(self, suite, log):
        self.images.append(suite)
        return f"localhost/pyfleet-base:{suite}-hash"

    def name(self, args):
        return args[-1]

    def inspect_rc(self, args):
        return 0 if args[-1] in self.containers else 125

    def inspect(self, args):
        c = self.containers.get(args[-1])
        if not c:
            return ""
        ip = c["ip"] or "10.89.3.99"
        return inspect_json(c["status"], c.get("image", "localhost/pyfleet-base:bookworm-hash"), ip=ip)

    def run(self, args):
        name = args[args.index("--name") + 1]
        self.containers[name] = {"status": "running", "ip": args[args.index("--ip") + 1], "image": args[-2]}
        return "abc\n"


def test_up_brings_every_host_up_and_writes_known_hosts_and_connection_file(fake, tmp_path, monkeypatch):
    world = World(fake, monkeypatch)
    inv_dir = tmp_path / "mylab"
    inv_dir.mkdir()
    inv = Inventory(path=inv_dir, hosts={"web1": {}, "lb1": {"lab_debian_suite": "trixie"}})
    said = []
    addresses, started = lab.up(inv, log=said.append)
    assert addresses == {"web1": "10.89.3.2", "lb1": "10.89.3.3"}
    assert started == ["web1", "lb1"]
    assert world.images == ["bookworm", "trixie"]
    assert [a[-2] for a in fake.args("run")] == [
        "localhost/pyfleet-base:bookworm-hash",
        "localhost/pyfleet-base:trixie-hash",
    ]
    assert fake.args("network", "create") == [("network", "create", "pyfleet-mylab")]
    the_lab = lab.Lab(inv)
    assert lab.read_known_hosts(the_lab) == {"web1": ("10.89.3.2", [ED_A]), "lb1": ("10.89.3.3", [ED_B, RSA_A])}
    assert lab.load_connection(inv) == {"lb1": "10.89.3.3", "web1": "10.89.3.2"}
    assert world.ssh == ["deploy@10.89.3.2", "deploy@10.89.3.3"]
    assert {p[0] for p in world.ports} == {("10.89.3.2", 22), ("10.89.3.3", 22)}
    assert [k["input_text"] for k in fake.options("exec", "-i")] == [f"{ED_A} pyfleet-mylab\n"] * 2
    assert said == []
    # A second up leaves the running hosts alone.
    fake.calls.clear()
    addresses, started = lab.up(inv, log=said.append)
    assert started == [] and not fake.args("run") and addresses["lb1"] == "10.89.3.3"
    assert len(world.keygen) == 1


def up_inventory(tmp_path):
    inv_dir = tmp_path / "mylab"
    inv_dir.mkdir(exist_ok=True)
    return Inventory(path=inv_dir, hosts={"web1": {}, "lb1": {}})


def test_up_passes_its_log_to_the_image_build_and_each_host(fake, tmp_path, monkeypatch):
    world = World(fake, monkeypatch, running=["pyfleet-mylab-web1"])
    world.containers["pyfleet-mylab-web1"].update(ip="10.89.3.7", image="localhost/pyfleet-base:bookworm-old")

    def ensure_image(suite, log):
        log(f"building {suite}")
        return f"localhost/pyfleet-base:{suite}-hash"

    monkeypatch.setattr(lab.image, "ensure_image", ensure_image)
    said = []
    addresses, started = lab.up(up_inventory(tmp_path), log=said.append)
    assert said == [
        "building bookworm",
        "web1: runs an older base image (localhost/pyfleet-base:bookworm-old); fab lab.down && fab lab.up rebuilds it",
    ]
    assert started == ["lb1"] and addresses == {"web1": "10.89.3.7", "lb1": "10.89.3.2"}


def test_up_names_the_host_whose_port_22_never_opens(fake, tmp_path, monkeypatch):
    World(fake, monkeypatch)
    Clock(monkeypatch)
    connections(monkeypatch, [OSError("[Errno 113] No route to host")])
    with pytest.raises(PyfleetError) as caught:
        lab.up(up_inventory(tmp_path), log=lambda _: None)
    assert str(caught.value) == (
        "lab host web1 (10.89.3.2) does not listen on port 22 after 60 s ([Errno 113] No route to host); "
        "look at `podman logs pyfleet-mylab-web1`, then fab lab.down && fab lab.up"
    )


def test_up_names_the_host_that_does_not_let_deploy_in(fake, tmp_path, monkeypatch):
    World(fake, monkeypatch)
    keygen = lab.run
    refused = done(255, "", "Host key verification failed.\n")
    monkeypatch.setattr(lab, "run", lambda args, **kw: refused if args[0] == "ssh" else keygen(args, **kw))
    with pytest.raises(PyfleetError) as caught:
        lab.up(up_inventory(tmp_path), log=lambda _: None)
    assert str(caught.value).startswith(
        "lab host web1 (10.89.3.2) does not let deploy in over SSH with sudo (Host key verification failed.); "
    )


def test_down_removes_the_lab_containers_network_and_state(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    the_lab.state_dir.mkdir(parents=True)
    for f in (the_lab.connection_file, the_lab.addresses_file, the_lab.known_hosts, the_lab.key):
        f.write_text("x")
    fake.on("ps", out="pyfleet-mylab-web1\npyfleet-mylab-old\n")
    fake.on("network", "exists", rc=0)
    assert lab.down(the_lab.inventory) == ["pyfleet-mylab-web1", "pyfleet-mylab-old"]
    assert fake.args() == [
        ("ps", "-a", "--filter", "label=pyfleet.lab=pyfleet-mylab", "--format", "{{.Names}}"),
        ("rm", "-f", "--ignore", "-t", "0", "pyfleet-mylab-web1", "pyfleet-mylab-old"),
        ("network", "exists", "pyfleet-mylab"),
        ("network", "rm", "-f", "pyfleet-mylab"),
    ]
    assert [k["check"] for k in fake.options()] == [True, False, False, True]
    assert fake.options("network", "rm")[0]["what"] == "removing network pyfleet-mylab"
    assert fake.options("network", "rm")[0]["fix"] == "check `podman network ls`"
    assert sorted(p.name for p in the_lab.state_dir.iterdir()) == ["id_ed25519"]  # the key stays


def test_down_of_a_lab_that_is_not_up_does_nothing(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("network", "exists", rc=1)
    assert lab.down(the_lab.inventory) == []
    assert fake.args() == [
        ("ps", "-a", "--filter", "label=pyfleet.lab=pyfleet-mylab", "--format", "{{.Names}}"),
        ("network", "exists", "pyfleet-mylab"),
    ]


def test_down_that_cannot_remove_a_container_is_one_line(fake, tmp_path):
    fake.on("ps", out="pyfleet-mylab-web1\n")
    fake.on("rm", rc=125, err="Error: given PIDs did not die within timeout\n")
    with pytest.raises(PyfleetError) as caught:
        lab.down(make_lab(tmp_path, "web1").inventory)
    assert str(caught.value) == (
        "removing lab hosts failed: Error: given PIDs did not die within timeout; "
        "check `podman ps -a`, then fab lab.down again"
    )


def test_removing_containers_pauses_between_attempts_and_may_give_up_quietly(fake, monkeypatch):
    slept = []
    monkeypatch.setattr(lab.time, "sleep", slept.append)
    fake.on("rm", rc=125, err="busy")
    lab.remove_containers(["a"], check=False)
    assert fake.args() == [("rm", "-f", "--ignore", "-t", "0", "a")] * lab.REMOVE_ATTEMPTS
    assert slept == [lab.REMOVE_RETRY_PAUSE] * (lab.REMOVE_ATTEMPTS - 1)
    assert lab.REMOVE_RETRY_PAUSE == 3


def test_removing_a_host_keeps_the_others_in_the_connection_file_and_known_hosts(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1", "web2")
    the_lab.state_dir.mkdir(parents=True)
    lab.write_connection_file(the_lab, {"web1": "10.89.3.2", "web2": "10.89.3.3", "web3": "10.89.3.4"})
    lab.write_known_hosts(
        the_lab, {"web1": ("10.89.3.2", [ED_A]), "web2": ("10.89.3.3", [ED_B]), "web3": ("10.89.3.4", [ED_A])}
    )
    lab.remove_host(the_lab.inventory, "web3")
    assert fake.args() == [("rm", "-f", "--ignore", "-t", "0", "pyfleet-mylab-web3")]
    assert fake.options()[0]["check"] is False
    assert lab.load_connection(the_lab.inventory) == {"web1": "10.89.3.2", "web2": "10.89.3.3"}
    assert lab.read_known_hosts(the_lab) == {"web1": ("10.89.3.2", [ED_A]), "web2": ("10.89.3.3", [ED_B])}


def test_removing_a_host_whose_container_will_not_go_still_forgets_it(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1")
    the_lab.state_dir.mkdir(parents=True)
    lab.write_connection_file(the_lab, {"web1": "10.89.3.2", "web3": "10.89.3.4"})
    lab.write_known_hosts(the_lab, {"web1": ("10.89.3.2", [ED_A]), "web3": ("10.89.3.4", [ED_A])})
    fake.on("rm", rc=125, err="Error: given PIDs did not die within timeout")
    lab.remove_host(the_lab.inventory, "web3")
    assert len(fake.args("rm")) == lab.REMOVE_ATTEMPTS
    assert lab.load_connection(the_lab.inventory) == {"web1": "10.89.3.2"}
    assert list(lab.read_known_hosts(the_lab)) == ["web1"]


def test_ssh_command_logs_in_as_deploy_with_the_lab_key_when_the_host_key_matches(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1", "web2")
    fake.on("container", "inspect", out=inspect_json(ip="10.89.3.2"))
    fake.on("exec", out=f"{RSA_A}\n{ED_A}\n")
    lab.write_known_hosts(the_lab, {"web1": ("10.89.3.2", [ED_A, RSA_A])})
    assert lab.ssh_command(the_lab.inventory, "web1") == [
        "ssh",
        *lab.ssh_options(the_lab),
        "-i",
        str(the_lab.key),
        "deploy@10.89.3.2",
    ]
    # fab lab.ssh web1 -- COMMAND: the command as one argument, run by the login's shell.
    assert lab.ssh_command(the_lab.inventory, "web1", "systemctl status nginx; id")[-2:] == [
        "deploy@10.89.3.2",
        "systemctl status nginx; id",
    ]


def test_ssh_command_to_a_host_not_in_the_inventory_is_one_line(fake, tmp_path):
    the_lab = make_lab(tmp_path, "web1", "web2")
    with pytest.raises(PyfleetError) as caught:
        lab.ssh_command(the_lab.inventory, "db1")
    assert str(caught.value) == f"no host 'db1' in inventory {tmp_path / 'mylab'}; hosts: web1, web2"
    assert fake.calls == []


@pytest.mark.parametrize("rc, status", [(125, None), (0, "exited")])
def test_ssh_command_to_a_host_that_is_not_running_is_one_line(fake, tmp_path, rc, status):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("container", "inspect", rc=rc, out=inspect_json(status or "x"))
    with pytest.raises(PyfleetError) as caught:
        lab.ssh_command(the_lab.inventory, "web1")
    assert str(caught.value) == "lab host web1 is not running; run fab lab.up"


@pytest.mark.parametrize(
    "known",
    [None, ("10.89.3.9", [ED_A]), ("10.89.3.2", [ED_B])],
    ids=["no-entry", "other-address", "other-key"],
)
def test_ssh_command_refuses_a_host_whose_key_or_address_is_not_the_known_one(fake, tmp_path, known):
    the_lab = make_lab(tmp_path, "web1")
    fake.on("container", "inspect", out=inspect_json(ip="10.89.3.2"))
    fake.on("exec", out=f"{ED_A}\n")
    lab.write_known_hosts(the_lab, {"web1": known} if known else {})
    with pytest.raises(PyfleetError) as caught:
        lab.ssh_command(the_lab.inventory, "web1")
    assert str(caught.value) == (
        f"host web1 (10.89.3.2): its SSH host key does not match the lab's known_hosts ({the_lab.known_hosts}); "
        "fab lab.up reads the lab hosts' keys again"
    )


# -- inventory copies ------------------------------------------------------------------------------


def test_add_host_writes_host_vars_only_when_given(tmp_path):
    inv = tmp_path / "inv"
    inv.mkdir()
    (inv / "hosts.yml").write_text("all:\n  vars: {}\n  children:\n    web:\n      hosts:\n        web1: {}\n")
    assert lab.add_host(inv, "web2", "web") == inv
    assert not (inv / "host_vars").exists()
    assert lab.add_host(str(inv), "worker1", "workers", {"celery_worker_types": ["io"]}) == inv
    assert lab.add_host(inv, "worker2", "workers", {"z": 1, "a": 2}) == inv  # host_vars exists already
    data = yaml.safe_load((inv / "hosts.yml").read_text())
    assert data["all"]["children"] == {
        "web": {"hosts": {"web1": {}, "web2": {}}},
        "workers": {"hosts": {"worker1": {}, "worker2": {}}},
    }
    assert (inv / "hosts.yml").read_text().startswith("all:\n  vars: {}\n  children:\n    web:\n")  # order kept
    assert (inv / "host_vars" / "worker1.yml").read_text() == "celery_worker_types:\n- io\n"
    assert (inv / "host_vars" / "worker2.yml").read_text() == "z: 1\na: 2\n"
    assert sorted(p.name for p in (inv / "host_vars").iterdir()) == ["worker1.yml", "worker2.yml"]


def test_add_domain_appends_to_the_named_app_only(tmp_path):
    inv = tmp_path / "inv"
    (inv / "group_vars" / "all").mkdir(parents=True)
    apps = inv / "group_vars" / "all" / "apps.yml"
    apps.write_text(
        yaml.safe_dump(
            {"pyfleet_apps": [{"name": "shop", "domains": ["shop.test"]}, {"name": "blog", "domains": ["b.test"]}]},
            sort_keys=False,
        )
    )
    assert lab.add_domain(str(inv), "blog", "www.b.test") == inv
    assert apps.read_text() == (
        "pyfleet_apps:\n- name: shop\n  domains:\n  - shop.test\n- name: blog\n  domains:\n  - b.test\n  - www.b.test\n"
    )


def test_a_grown_inventory_is_a_copy_under_dest(tmp_path):
    src = tmp_path / "src" / "mylab"
    src.mkdir(parents=True)
    (src / "hosts.yml").write_text("all:\n  children:\n    web:\n      hosts:\n        web1: {}\n")
    grown = lab.grown_inventory(Inventory(path=src), str(tmp_path / "dest"), "web2", "web")
    assert grown == tmp_path / "dest" / "mylab"
    assert "web2" in (grown / "hosts.yml").read_text()
    assert "web2" not in (src / "hosts.yml").read_text()
