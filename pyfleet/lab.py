"""A local lab: one podman container per inventory host, with systemd and sshd.

``up`` is idempotent: hosts that already run are left alone; the only outputs that
change are the connection file that tells Ansible (and Fabric) how to reach each
host: ``.lab/<inventory>/connection.yml`` with real addresses on the lab network,
and the lab's ``known_hosts`` beside it.

Host keys: each lab host makes its own SSH host keys when it first boots (see
image.SSH_HOST_KEYS_UNIT); ``up`` reads them inside the container (podman exec,
not over the network) and writes them to ``.lab/<inventory>/known_hosts``, one
line per key for the host's lab address. Every SSH client of the lab (Ansible,
Fabric, ``fab lab.ssh``, testinfra) checks against that file and nothing else
(StrictHostKeyChecking=yes): no key is accepted blindly, and a host created anew
gets its new keys written on the next ``up``.

The login: user ``deploy`` (LAB_USER) with the lab key and passwordless sudo,
as on a real server; root has no key and, once converged, sshd refuses it.
"""

import ipaddress
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from pyfleet import image
from pyfleet.errors import PyfleetError
from pyfleet.inventory import Inventory
from pyfleet.podman import podman
from pyfleet.shell import ROOT, last_line, run

LAB_DIR = ROOT / ".lab"
# Who Ansible, Fabric and `fab lab.ssh` log in as on a lab host: a user with
# passwordless sudo (ansible_become), as inventory/example does on real servers.
LAB_USER = "deploy"
SUDOERS_FILE = "/etc/sudoers.d/pyfleet-lab"  # no dot in the name: sudo skips such files
# Options of every ssh to a lab host besides the host key ones (ssh_options()).
COMMON_SSH_OPTIONS = ["-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5"]
BOOT_ATTEMPTS, BOOT_RETRY_PAUSE = 3, 2  # a lab host whose init dies at boot is created again
EXEC_RETRIES = 5  # seconds to wait for podman to see that a container's init died
STOPPED_CONTAINER = "cannot exec in a stopped container"  # runc's answer once a container's init died
# `podman rm -f` waits only 5 s for the killed processes to die; on a busy machine they
# can take longer ("given PIDs did not die within timeout", seen in CI): try again.
REMOVE_ATTEMPTS, REMOVE_RETRY_PAUSE = 4, 3
# The cgroup v2 hierarchy of a machine with the hybrid cgroup layout (v1 controllers
# plus this). See cgroup_options().
UNIFIED_CGROUP = Path("/sys/fs/cgroup/unified")


@dataclass
class Lab:
    """Names and paths of the lab that belongs to one inventory."""

    inventory: Inventory
    suite: str = "bookworm"

    @property
    def name(self):
        """The lab's name, used for the podman network and as container name prefix."""
        return f"pyfleet-{self.inventory.name}"

    @property
    def network(self):
        return self.name

    @property
    def state_dir(self):
        return LAB_DIR / self.inventory.name

    @property
    def key(self):
        """Private half of the lab's SSH key (generated once per lab)."""
        return self.state_dir / "id_ed25519"

    @property
    def addresses_file(self):
        """Each host's fixed address on the lab network (kept so a restarted host keeps it)."""
        return self.state_dir / "addresses.json"

    @property
    def known_hosts(self):
        """The lab hosts' SSH host keys, for their lab addresses (written by ``up``)."""
        return self.state_dir / "known_hosts"

    @property
    def connection_file(self):
        """Inventory source with ansible_host and SSH settings for each lab host."""
        return self.state_dir / "connection.yml"

    def container(self, host):
        return f"{self.name}-{host}"


def ssh_options(lab):
    """ssh options for a lab host: its host key must be the one in the lab's known_hosts, no other file."""
    return [
        "-o",
        f"UserKnownHostsFile={lab.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        *COMMON_SSH_OPTIONS,
    ]


def _suite_of(inventory, host):
    return inventory.hosts[host].get("lab_debian_suite", "bookworm")


def ensure_key(lab):
    """Create the lab's SSH key pair unless it exists."""
    lab.state_dir.mkdir(parents=True, exist_ok=True)
    if not lab.key.exists():
        run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{lab.name}", "-f", lab.key],
            what="generating the lab SSH key",
            fix="install openssh-client (./bootstrap.sh)",
        )
    return lab.key.with_suffix(".pub").read_text()


def ensure_network(lab):
    """Create the lab's own podman network unless it exists."""
    if podman("network", "exists", lab.network, check=False).returncode != 0:
        podman("network", "create", lab.network, what=f"creating network {lab.network}")


def fixed_address(lab, host):
    """The host's address on the lab network: the one it had, else the lowest free one.

    A real server keeps its address when it reboots; podman would hand a stopped
    and started container the next free one, and the load balancer (which names
    web hosts by address) would lose it. So each host gets ``--ip`` from this
    table, stored per lab and reset when the network's subnet changes.
    """
    info = json.loads(podman("network", "inspect", lab.network, what=f"reading network {lab.network}").stdout)[0]
    subnet = info["subnets"][0]
    table = json.loads(lab.addresses_file.read_text()) if lab.addresses_file.exists() else {}
    if table.get("subnet") != subnet["subnet"]:
        table = {"subnet": subnet["subnet"], "hosts": {}}
    if host not in table["hosts"]:
        taken = set(table["hosts"].values()) | {subnet.get("gateway")}
        free = (str(ip) for ip in ipaddress.ip_network(subnet["subnet"]).hosts() if str(ip) not in taken)
        table["hosts"][host] = next(free, None)
        if table["hosts"][host] is None:
            raise PyfleetError(f"lab network {lab.network} has no free address for {host}; fab lab.down && fab lab.up")
        lab.state_dir.mkdir(parents=True, exist_ok=True)
        lab.addresses_file.write_text(json.dumps(table, indent=1, sort_keys=True))
    return table["hosts"][host]


def container_state(lab, host):
    """(status, image) of the host's container, or (None, None) when there is none."""
    proc = podman("container", "inspect", lab.container(host), check=False)
    if proc.returncode != 0:
        return None, None
    info = json.loads(proc.stdout)[0]
    return info["State"]["Status"], info.get("ImageName")


def address(lab, host):
    """The host's address on the lab network."""
    proc = podman("container", "inspect", lab.container(host))
    nets = json.loads(proc.stdout)[0]["NetworkSettings"]["Networks"]
    ip = (nets.get(lab.network) or {}).get("IPAddress")
    if not ip:
        raise PyfleetError(
            f"lab host {host} has no address on network {lab.network}; run fab lab.down, then fab lab.up"
        )
    return ip


def cgroup_options(unified=UNIFIED_CGROUP):
    """podman options that let a lab host's systemd see its processes exit, as on a real host.

    On a machine with the hybrid cgroup layout, a container's systemd sees only the
    v1 hierarchies and is never told that a unit's cgroup became empty: a SIGKILLed
    main process leaves its unit in ``deactivating (stop-sigkill)`` for the whole
    TimeoutStopSec before Restart= acts, and a stopped unit with a leftover child
    ends ``failed``. Bind-mounting the machine's unified hierarchy gives it the
    v2 notifications (each container still gets a cgroup path of its own in it,
    libpod-<id>, removed with the container). A machine with only cgroup v2 needs
    nothing: podman hands the container its own cgroup namespace.
    """
    if os.path.ismount(unified):  # only the hybrid layout mounts cgroup2 there
        return ["-v", f"{unified}:{unified}:rw"]
    return []


def _create(lab, host, tag):
    podman(
        "run",
        "-d",
        "--name",
        lab.container(host),
        "--hostname",
        host,
        "--network",
        lab.network,
        "--ip",
        fixed_address(lab, host),
        "--systemd=always",
        # Rootful podman's default capabilities lack NET_ADMIN, which nft needs to load
        # a host firewall (as on a real server); the container's own network namespace
        # is all it can change. A host created before this gets it only when created
        # anew (start_host says so).
        "--cap-add=NET_ADMIN",
        *cgroup_options(),
        "--label",
        f"pyfleet.lab={lab.name}",
        tag,
        "/sbin/init",
        what=f"starting lab host {host}",
        fix="check `podman info`, then run fab lab.up again",
    )


def _sees_unified_cgroup(lab, host):
    """Whether the host's container has the machine's unified cgroup hierarchy mounted."""
    proc = podman(
        "container",
        "inspect",
        "--format",
        "{{range .Mounts}}{{.Destination}} {{end}}",
        lab.container(host),
        check=False,
    )
    return str(UNIFIED_CGROUP) in proc.stdout.split()


def _has_net_admin(lab, host):
    """Whether the host's container was created with the NET_ADMIN capability (see _create)."""
    proc = podman(
        "container", "inspect", "--format", "{{range .EffectiveCaps}}{{.}} {{end}}", lab.container(host), check=False
    )
    return proc.returncode != 0 or "CAP_NET_ADMIN" in proc.stdout.split()


def _why_stopped(lab, host):
    """Exit code and last log line of a container that stopped: what to tell the user."""
    proc = podman(
        "container", "inspect", "--format", "{{.State.ExitCode}} {{.State.Error}}", lab.container(host), check=False
    )
    logs = podman("logs", "--tail", "5", lab.container(host), check=False)
    return f"exit code {proc.stdout.strip() or '?'}, last log line: {last_line(logs.stdout + logs.stderr)}"


# Run inside a lab host as root, the lab's public key on stdin: the login user with
# the key and passwordless sudo (the sudoers file is checked with visudo before it
# is put in place), and no key for root. Idempotent: runs on every `fab lab.up`.
LOGIN_SETUP = f"""set -e
u={LAB_USER}
id -u "$u" >/dev/null 2>&1 || useradd --create-home --user-group --shell /bin/bash "$u"
home=$(getent passwd "$u" | cut -d: -f6)
install -d -m 700 -o "$u" -g "$u" "$home/.ssh"
cat > "$home/.ssh/authorized_keys"
chown "$u:$u" "$home/.ssh/authorized_keys"
chmod 600 "$home/.ssh/authorized_keys"
tmp=/etc/sudoers.d/.pyfleet-lab.new
printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\\n' "$u" > "$tmp"
chmod 440 "$tmp"
visudo -c -q -f "$tmp"
mv -f "$tmp" {SUDOERS_FILE}
visudo -c -q
rm -f /root/.ssh/authorized_keys
"""


def _install_key(lab, host, pubkey):
    """Set up the lab login on the host (LOGIN_SETUP): user, key, sudo."""
    return podman("exec", "-i", lab.container(host), "sh", "-c", LOGIN_SETUP, input_text=pubkey, check=False)


def start_host(lab, host, tag, pubkey, log=print):
    """Create (or start) the host's container and set up the lab login (LAB_USER, the lab key, sudo).

    A container whose init dies while it boots, or is gone although podman says
    "Up" (a machine restored from a snapshot taken with the lab up), is diagnosed
    (exit code, last log line), removed and created again (BOOT_ATTEMPTS in all,
    a pause between) before giving up with one line.
    """
    status, img = container_state(lab, host)
    started = status != "running"
    if status == "running" and img and img != tag:
        log(f"{host}: runs an older base image ({img}); fab lab.down && fab lab.up rebuilds it")
    if status == "running" and cgroup_options() and not _sees_unified_cgroup(lab, host):
        log(
            f"{host}: was created without the unified cgroup hierarchy (crashed units restart late); "
            "fab lab.down && fab lab.up recreates it"
        )
    if status == "running" and not _has_net_admin(lab, host):
        log(
            f"{host}: was created without the NET_ADMIN capability (a host firewall cannot load); "
            "fab lab.down && fab lab.up recreates it"
        )
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        if status is None:
            _create(lab, host, tag)
        elif status != "running":
            podman(
                "start", lab.container(host), what=f"starting lab host {host}", fix="run fab lab.down, then fab lab.up"
            )
        # Every time, so that a lab whose key was regenerated still lets us in.
        proc = _install_key(lab, host, pubkey)
        if proc.returncode == 0:
            return started
        # Runc's "stopped" outweighs podman's "running": podman can learn late that an
        # init died, or never (a machine restored from a snapshot with the lab up
        # keeps every container "Up" with no process behind it). Any other failure:
        # look again for a few seconds, retrying the setup while podman says running.
        status, _ = container_state(lab, host)
        for _ in range(0 if STOPPED_CONTAINER in proc.stderr else EXEC_RETRIES):
            if status != "running":
                break
            time.sleep(1)
            proc = _install_key(lab, host, pubkey)
            if proc.returncode == 0:
                return started
            status, _ = container_state(lab, host)
        if status == "running" and STOPPED_CONTAINER not in proc.stderr:
            raise PyfleetError(
                f"setting up the lab login ({LAB_USER}) on {host} failed: {last_line(proc.stderr)}; "
                "run fab lab.down, then fab lab.up"
            )
        why = _why_stopped(lab, host)
        if status == "running":
            why += "; podman still said running"
        if attempt < BOOT_ATTEMPTS:
            log(f"{host}: the container's init is not running ({why}); creating it once more")
            remove_containers([lab.container(host)], check=False)
            time.sleep(BOOT_RETRY_PAUSE)
            status, started = None, True
    raise PyfleetError(
        f"lab host {host} stops as soon as it boots ({why}); "
        f"check `podman info`, free memory/disk and fs.inotify.max_user_instances (./bootstrap.sh sets it), "
        "then fab lab.down && fab lab.up"
    )


def wait_for_port(lab, host, ip, timeout=60):
    """Wait until the host's sshd listens (then it has made its host keys), or fail naming the host."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, 22), timeout=2):
                return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise PyfleetError(
        f"lab host {host} ({ip}) does not listen on port 22 after {timeout} s ({last}); "
        f"look at `podman logs {lab.container(host)}`, then fab lab.down && fab lab.up"
    )


def read_host_keys(lab, host):
    """The host's public SSH host keys as "type base64" strings, read inside its container.

    Read with podman exec, not over SSH: that is how the lab knows they are the
    keys of its own container. Call once sshd listens (it makes them first).
    """
    proc = podman(
        "exec",
        lab.container(host),
        "sh",
        "-c",
        "cat /etc/ssh/ssh_host_*_key.pub",
        what=f"reading the SSH host keys of lab host {host}",
        fix="fab lab.down && fab lab.up",
    )
    keys = [" ".join(line.split()[:2]) for line in proc.stdout.splitlines() if len(line.split()) >= 2]
    if not keys:
        raise PyfleetError(f"lab host {host} has no SSH host keys in /etc/ssh; fab lab.down && fab lab.up")
    return sorted(keys)


KNOWN_HOSTS_HEADER = (
    "# Written by `fab lab.up`: the SSH host keys of the lab hosts, read inside each container.\n"
    "# Lines: address key-type key host. Regenerated on each run.\n"
)


def known_hosts_text(entries):
    """known_hosts content for ``{host: (address, [key, ...])}``: one line per key, the host name as comment."""
    lines = [f"{ip} {key} {host}" for host, (ip, keys) in sorted(entries.items()) for key in keys]
    return KNOWN_HOSTS_HEADER + "".join(line + "\n" for line in lines)


def read_known_hosts(lab):
    """``{host: (address, [key, ...])}`` from the lab's known_hosts ({} when there is none)."""
    entries = {}
    if lab.known_hosts.exists():
        for line in lab.known_hosts.read_text().splitlines():
            parts = line.split()
            if len(parts) == 4 and not line.startswith("#"):
                ip, keytype, key, host = parts
                entries.setdefault(host, (ip, []))[1].append(f"{keytype} {key}")
    return entries


def write_known_hosts(lab, entries):
    """Write the lab's known_hosts for ``{host: (address, [key, ...])}``; return True when it changed.

    Written whole each time: a host created anew (new keys, maybe a new address)
    replaces its old lines, and hosts that are gone leave none.
    """
    text = known_hosts_text(entries)
    old = lab.known_hosts.read_text() if lab.known_hosts.exists() else None
    if old != text:
        lab.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = lab.known_hosts.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(lab.known_hosts)
    return old != text


def wait_for_ssh(lab, host, ip, timeout=60):
    """Wait until the host's sshd accepts the lab key for LAB_USER (host key checked), or fail naming the host."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((ip, 22), timeout=2):
                pass
            proc = run(
                ["ssh", *ssh_options(lab), "-o", "BatchMode=yes", "-i", lab.key, f"{LAB_USER}@{ip}", "sudo -n true"],
                what="ssh",
                fix="",
                check=False,
                timeout=15,
            )
            if proc.returncode == 0:
                return
            last = last_line(proc.stderr) if proc.stderr.strip() else f"ssh exit code {proc.returncode}"
            if "Host key verification failed" in proc.stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in proc.stderr:
                break  # will not get better by waiting
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise PyfleetError(
        f"lab host {host} ({ip}) does not let {LAB_USER} in over SSH with sudo ({last}); "
        f"look at `podman logs {lab.container(host)}`, then fab lab.down && fab lab.up"
    )


def write_connection_file(lab, addresses):
    """Write the connection inventory; return True when its content changed."""
    data = {
        "all": {
            "hosts": {h: {"ansible_host": ip} for h, ip in sorted(addresses.items())},
            "vars": {
                "ansible_user": LAB_USER,
                "ansible_become": True,
                "ansible_ssh_private_key_file": str(lab.key),
                "ansible_ssh_common_args": " ".join(ssh_options(lab)),
                "ansible_python_interpreter": "/usr/bin/python3",
            },
        }
    }
    text = "# Written by `fab lab.up`: how to reach the lab hosts. Regenerated on each run.\n" + yaml.safe_dump(
        data, sort_keys=False
    )
    old = lab.connection_file.read_text() if lab.connection_file.exists() else None
    if old != text:
        # Whole or not at all: commands and the unit tests may read it while the e2e lab comes up.
        tmp = lab.connection_file.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(lab.connection_file)
    return old != text


def up(inventory, log=print):
    """Bring every inventory host up as a lab container; return {host: address}."""
    lab = Lab(inventory)
    suites = {_suite_of(inventory, h) for h in inventory.hosts}
    tags = {s: image.ensure_image(s, log=log) for s in sorted(suites)}
    pubkey = ensure_key(lab)
    ensure_network(lab)
    started = [h for h in inventory.hosts if start_host(lab, h, tags[_suite_of(inventory, h)], pubkey, log=log)]
    addresses = {h: address(lab, h) for h in inventory.hosts}
    for h in inventory.hosts:
        wait_for_port(lab, h, addresses[h])
    write_known_hosts(lab, {h: (addresses[h], read_host_keys(lab, h)) for h in inventory.hosts})
    for h in inventory.hosts:
        wait_for_ssh(lab, h, addresses[h])
    write_connection_file(lab, addresses)
    return addresses, started


def remove_containers(names, check=True):
    """Kill and remove the containers ``names``, trying again while their processes take time to die."""
    for attempt in range(1, REMOVE_ATTEMPTS + 1):
        proc = podman("rm", "-f", "--ignore", "-t", "0", *names, check=False)
        if proc.returncode == 0:
            return
        if attempt < REMOVE_ATTEMPTS:
            time.sleep(REMOVE_RETRY_PAUSE)
    if check:
        raise PyfleetError(
            f"removing lab hosts failed: {last_line(proc.stderr)}; check `podman ps -a`, then fab lab.down again"
        )


def down(inventory, log=print):
    """Remove the lab's containers (every one with the lab's label) and its network."""
    lab = Lab(inventory)
    proc = podman("ps", "-a", "--filter", f"label=pyfleet.lab={lab.name}", "--format", "{{.Names}}")
    names = proc.stdout.split()
    if names:
        remove_containers(names)
    if podman("network", "exists", lab.network, check=False).returncode == 0:
        podman(
            "network", "rm", "-f", lab.network, what=f"removing network {lab.network}", fix="check `podman network ls`"
        )
    for state in (lab.connection_file, lab.addresses_file, lab.known_hosts):
        if state.exists():
            state.unlink()
    return names


def grown_inventory(inventory, dest, host, group, host_vars=None):
    """A copy of ``inventory`` under ``dest`` with one more ``host`` in ``group``; returns its path.

    The copy keeps the inventory's directory name, so ``up`` on it grows the same
    lab (network, key, connection file): how tests and benchmarks scale out.
    """
    copy = Path(dest) / inventory.path.name
    shutil.copytree(inventory.path, copy)
    return add_host(copy, host, group, host_vars)


def add_host(inventory_dir, host, group, host_vars=None):
    """Add ``host`` to ``group`` in the inventory directory (a copy: see grown_inventory); returns it."""
    hosts_yml = Path(inventory_dir) / "hosts.yml"
    data = yaml.safe_load(hosts_yml.read_text())
    data["all"]["children"].setdefault(group, {}).setdefault("hosts", {})[host] = {}
    hosts_yml.write_text(yaml.safe_dump(data, sort_keys=False))
    if host_vars:
        (Path(inventory_dir) / "host_vars").mkdir(exist_ok=True)
        (Path(inventory_dir) / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump(host_vars, sort_keys=False))
    return Path(inventory_dir)


def add_domain(inventory_dir, app, domain):
    """One more domain for ``app`` in the inventory directory's group_vars/all/apps.yml (a copy); returns it."""
    apps_yml = Path(inventory_dir) / "group_vars" / "all" / "apps.yml"
    data = yaml.safe_load(apps_yml.read_text())
    next(a for a in data["pyfleet_apps"] if a["name"] == app)["domains"].append(domain)
    apps_yml.write_text(yaml.safe_dump(data, sort_keys=False))
    return Path(inventory_dir)


def remove_host(inventory, host):
    """Remove one lab host that ``inventory`` no longer has; the connection file keeps the others."""
    lab = Lab(inventory)
    remove_containers([lab.container(host)], check=False)
    addresses = {h: ip for h, ip in load_connection(inventory).items() if h in inventory.hosts}
    write_connection_file(lab, addresses)
    write_known_hosts(lab, {h: e for h, e in read_known_hosts(lab).items() if h in inventory.hosts})


def ssh_command(inventory, host, command=None):
    """The ssh command line that opens a shell on a lab host (as LAB_USER; sudo -i for root), or runs ``command`` there."""
    lab = Lab(inventory)
    if host not in inventory.hosts:
        raise PyfleetError(f"no host '{host}' in inventory {inventory.path}; hosts: {', '.join(inventory.hosts)}")
    status, _ = container_state(lab, host)
    if status != "running":
        raise PyfleetError(f"lab host {host} is not running; run fab lab.up")
    ip = address(lab, host)
    # ssh would refuse a key that is not the lab's with a screenful; say it in one line.
    known = read_known_hosts(lab).get(host)
    if known != (ip, read_host_keys(lab, host)):
        raise PyfleetError(
            f"host {host} ({ip}): its SSH host key does not match the lab's known_hosts ({lab.known_hosts}); "
            "fab lab.up reads the lab hosts' keys again"
        )
    return ["ssh", *ssh_options(lab), "-i", str(lab.key), f"{LAB_USER}@{ip}", *([command] if command else [])]


def load_connection(inventory):
    """{host: address} from the connection file, or {} when the lab is not up."""
    lab = Lab(inventory)
    if not lab.connection_file.exists():
        return {}
    data = yaml.safe_load(lab.connection_file.read_text()) or {}
    return {h: v["ansible_host"] for h, v in data.get("all", {}).get("hosts", {}).items()}


def connection_path(inventory_path):
    """Path of the connection file for an inventory directory (may not exist yet)."""
    return LAB_DIR / Path(inventory_path).name / "connection.yml"
