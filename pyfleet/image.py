"""The lab's base image: a Debian root file system built locally with debootstrap.

No container registry is needed: the image is built from the Debian mirror the
controller already uses, imported into podman, and tagged with a hash of its
recipe, so it is rebuilt only when the recipe (suite, packages, CA certificates,
this file's build steps) changes.
"""

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from pyfleet.errors import PyfleetError
from pyfleet.podman import podman, podman_env
from pyfleet.shell import ROOT, last_line, run

IMAGE_NAME = "localhost/pyfleet-base"

# Baked in so that converging a fresh lab installs little over the network: what
# Ansible needs on a host (python3, python3-apt, acl for become_user), systemd and
# sshd. debootstrap installs these (its own dependency resolution is simple).
PACKAGES = [
    "python3",
    "python3-apt",
    "python3-venv",
    "openssh-server",
    "sudo",
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "ca-certificates",
    "acl",
    "locales",
    "tzdata",
    "curl",
    "procps",
    "less",
    "openssl",
]
# The packages the roles install, added with apt inside the image (debootstrap
# cannot resolve some of their dependencies). Roles still declare every package
# they need; with these baked in, a converge installs nothing.
STACK_PACKAGES = ["nginx", "redis-server", "nftables", "netbase", "python3-cryptography"]
# Services baked in but not wanted on every host: the roles enable them where needed.
DISABLED_SERVICES = ["nginx", "redis-server", "nftables"]
BUILD_STEPS_VERSION = "6"  # bump when the build steps below change
# Each lab host makes its own SSH host keys when sshd first starts: installing
# openssh-server in the image made one set that every container would share
# (and a host's key would identify nothing). Debian's ssh.service checks the
# configuration (sshd -t) before it starts sshd, which fails without keys, so
# the drop-in lists ExecStartPre anew: keys first (only the missing ones, and only
# the types roles/common keeps, ed25519 and rsa: `ssh-keygen -A` would make an ecdsa
# key at every sshd start that each converge removed again), then the check. Trixie's own sshd-keygen.service acts on
# systemd's first boot only, and bookworm has no such unit: this works on both.
SSH_HOST_KEYS_DROPIN = "etc/systemd/system/ssh.service.d/pyfleet-host-keys.conf"
SSH_HOST_KEYS_UNIT = """[Service]
# pyfleet lab image: the image has no SSH host keys; each host makes its own.
ExecStartPre=
ExecStartPre=/bin/sh -c 'test -e /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N "" -C "" -f /etc/ssh/ssh_host_ed25519_key'
ExecStartPre=/bin/sh -c 'test -e /etc/ssh/ssh_host_rsa_key || ssh-keygen -q -t rsa -b 3072 -N "" -C "" -f /etc/ssh/ssh_host_rsa_key'
ExecStartPre=/usr/sbin/sshd -t
"""
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
SUITES = ("bookworm", "trixie")


def controller_mirror():
    """The Debian mirror for debootstrap: $PYFLEET_DEBIAN_MIRROR, else the controller's own apt source."""
    if os.environ.get("PYFLEET_DEBIAN_MIRROR"):
        return os.environ["PYFLEET_DEBIAN_MIRROR"], os.environ.get("PYFLEET_DEBIAN_SECURITY_MIRROR")
    texts = []
    for f in [*sorted(Path("/etc/apt/sources.list.d").glob("*.sources")), Path("/etc/apt/sources.list")]:
        if f.exists():
            texts.append(f.read_text())
    return parse_mirrors("\n".join(texts))


def parse_mirrors(text):
    """(main mirror, security mirror or None) from apt sources in deb822 or one-line form."""
    uris = re.findall(r"^URIs:\s*(\S+)", text, re.M)
    uris += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M)
    main = next((u for u in uris if "security" not in u), None)
    security = next((u for u in uris if "security" in u), None)
    if not main:
        raise PyfleetError("no Debian mirror found in /etc/apt/sources*; set PYFLEET_DEBIAN_MIRROR=<mirror URL>")
    return main.rstrip("/"), security.rstrip("/") if security else None


def extra_ca_certificates():
    """The controller's extra CA certificates (the hosts need them behind TLS-intercepting proxies)."""
    return sorted(EXTRA_CA_DIR.glob("*.crt")) if EXTRA_CA_DIR.is_dir() else []


def recipe_hash(suite):
    """A short hash of everything that goes into the image."""
    h = hashlib.sha256()
    h.update(f"{suite}|{BUILD_STEPS_VERSION}|{','.join(PACKAGES)}|{','.join(STACK_PACKAGES)}".encode())
    h.update(",".join(DISABLED_SERVICES).encode())
    for cert in extra_ca_certificates():
        h.update(cert.name.encode() + cert.read_bytes())
    return h.hexdigest()[:12]


def image_tag(suite="bookworm"):
    """The full image reference for ``suite`` with the current recipe."""
    return f"{IMAGE_NAME}:{suite}-{recipe_hash(suite)}"


def ensure_image(suite="bookworm", log=print):
    """Build and import the base image unless an image with this recipe exists; return its tag."""
    if suite not in SUITES:
        raise PyfleetError(f"unknown Debian suite '{suite}'; use one of {', '.join(SUITES)}")
    tag = image_tag(suite)
    if podman("image", "exists", tag, check=False).returncode == 0:
        return tag
    # One build per tag at a time: the lab and the molecule scenarios may ask at once.
    with open(Path(tempfile.gettempdir()) / f"pyfleet-image-{suite}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if podman("image", "exists", tag, check=False).returncode == 0:
            return tag
        return _build(suite, tag, log)


def _build(suite, tag, log):
    if not shutil.which("debootstrap"):
        raise PyfleetError("debootstrap is not installed; run ./bootstrap.sh")
    mirror, security = controller_mirror()
    cache = ROOT / ".cache"
    cache.mkdir(exist_ok=True)
    free = shutil.disk_usage(cache).free
    if free < 2 * 1024**3:
        raise PyfleetError(
            f"only {free // 1024**2} MiB free under {cache}; the base image needs 2 GiB: free some space"
        )
    log(f"building base image {tag} with debootstrap from {mirror} (about 2 minutes, once)")
    rootfs = Path(tempfile.mkdtemp(prefix=f"rootfs-{suite}-", dir=cache))
    try:
        run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, rootfs, mirror],
            what=f"debootstrap {suite}",
            fix="check the mirror (PYFLEET_DEBIAN_MIRROR) and free disk space",
            timeout=1800,
        )
        _customise(rootfs, suite, mirror, security)
        _import(rootfs, tag)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    _remove_superseded(suite, tag, log)
    return tag


def _remove_superseded(suite, tag, log):
    """Remove this suite's images of older recipes (300 MB each); one still used by a container stays."""
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_NAME, check=False).stdout.split()
    old = sorted({t for t in listed if t.startswith(f"{IMAGE_NAME}:{suite}-") and t != tag})
    for image in old:
        if podman("rmi", image, check=False).returncode == 0:
            log(f"removed the superseded base image {image}")


def _customise(rootfs, suite, mirror, security):
    """Make the root file system a good lab host: apt sources, CA certificates, sshd (no host keys), quiet systemd."""
    lines = [f"deb {mirror} {suite} main", f"deb {mirror} {suite}-updates main"]
    if security:
        lines.append(f"deb {security} {suite}-security main")
    (rootfs / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")
    for cert in extra_ca_certificates():
        shutil.copy(cert, rootfs / "usr/local/share/ca-certificates" / cert.name)
    (rootfs / "etc/machine-id").write_text("")  # systemd makes one per container
    (rootfs / "etc/hostname").write_text("localhost\n")
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # made by openssh-server's install, the same in every container: see SSH_HOST_KEYS_UNIT
    dropin = rootfs / SSH_HOST_KEYS_DROPIN
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(SSH_HOST_KEYS_UNIT)
    script = "; ".join(
        [
            "set -e",
            # No package may start its service in the chroot (on the controller itself).
            "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d",
            "chmod 755 /usr/sbin/policy-rc.d",
            "update-ca-certificates >/dev/null",
            # debootstrap installs from the suite's main archive only: take the updates
            # and security fixes too, and leave fresh package lists, so that a converge
            # within a day of the build installs without `apt-get update`.
            "apt-get update -qq",
            "export DEBIAN_FRONTEND=noninteractive",
            "apt-get -y -qq -o Dpkg::Options::=--force-confold upgrade >/dev/null",
            f"apt-get -y -qq --no-install-recommends install {' '.join(STACK_PACKAGES)} >/dev/null",
            f"systemctl disable {' '.join(DISABLED_SERVICES)} >/dev/null 2>&1 || true",
            # Units that make no sense in a container and slow boot down.
            "systemctl mask getty@tty1.service console-getty.service systemd-udevd.service "
            "systemd-modules-load.service sys-kernel-debug.mount >/dev/null 2>&1 || true",
            "systemctl enable ssh >/dev/null 2>&1",
            "apt-get clean",
            "rm /usr/sbin/policy-rc.d",
        ]
    )
    run(
        ["chroot", rootfs, "/bin/sh", "-c", script],
        what="configuring the base image",
        fix="see the message; the image is rebuilt on the next fab lab.up",
    )


def _import(rootfs, tag):
    """Stream the root file system into podman as ``tag``."""
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    imp = subprocess.run(
        ["podman", "import", "--change", "CMD=/sbin/init", "-", tag],
        stdin=tar.stdout,
        capture_output=True,
        text=True,
        env=podman_env(),
    )
    tar.stdout.close()
    tar.wait()
    if tar.returncode != 0 or imp.returncode != 0:
        raise PyfleetError(
            f"importing the base image failed: {last_line(imp.stderr) if imp.stderr.strip() else 'tar failed'}; "
            "check free disk space and run fab lab.up again"
        )
