#!/usr/bin/env bash
# Install everything the pyfleet controller needs on a Debian 12/13 machine:
# apt packages (podman, runc, debootstrap, ...), the .venv with exact pins, and
# the Ansible collections. Safe to re-run: each step is skipped when already done.
set -euo pipefail

cd "$(dirname "$0")"
say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "run as root (podman lab hosts need root); sudo is not installed"
    exec sudo -E "$0" "$@"
fi
[ -r /etc/debian_version ] || die "pyfleet's controller setup supports Debian 12/13; this machine is not Debian"

# Controller packages. podman runs the lab hosts (runc: crun fails with "cgroups in
# hybrid mode not supported" on hybrid cgroup machines); debootstrap builds the lab base image;
# nftables lets the unit tests check the firewall role's rendered ruleset with `nft -c`.
APT_PACKAGES=(podman runc netavark aardvark-dns iptables debootstrap openssh-client
              python3 python3-venv ca-certificates rsync nftables)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed; check the apt sources and the network"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed; see the apt output above"
else
    say "apt packages present"
fi

# Each lab host runs systemd, which holds several inotify instances: Debian's default of
# 128 per user stops a lab of about 20 hosts at boot (the container exits with 255).
sysctl_conf=/etc/sysctl.d/60-pyfleet-lab.conf
if [ "$(sysctl -n fs.inotify.max_user_instances)" -lt 1024 ]; then
    say "raising fs.inotify.max_user_instances to 1024 for the lab hosts ($sysctl_conf)"
    echo "fs.inotify.max_user_instances = 1024" > "$sysctl_conf"
    sysctl -q -p "$sysctl_conf" || die "sysctl -p $sysctl_conf failed; set fs.inotify.max_user_instances=1024 by hand"
fi

# The venv: rebuilt only when requirements.txt changes (its hash is stamped inside).
PYTHON="${PYFLEET_PYTHON:-python3}"
stamp=.venv/.pyfleet-requirements.sha256
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "installing Python dependencies into .venv (exact pins from requirements.txt)"
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv || die "cannot create .venv with $PYTHON; install python3-venv"
    # grep drops pip's noise about unreadable local indexes some machines configure.
    .venv/bin/python -m pip install -q -r requirements.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
    [ "${PIPESTATUS[0]}" -eq 0 ] || die "pip install -r requirements.txt failed; see above"
    echo "$want" > "$stamp"
else
    say ".venv up to date"
fi

# Collections: the PyPI 'ansible' package bundles them, so this needs no Galaxy
# when the floors in requirements.yml are met.
# pyfleet itself, editable: a change to pyfleet/ needs no reinstall. Checked from
# / so that the working directory does not make it importable by accident.
if ! (cd / && "$OLDPWD/.venv/bin/python" -c 'import pyfleet, os, sys; sys.exit(os.path.dirname(os.path.dirname(pyfleet.__file__)) != sys.argv[1])' "$PWD") 2>/dev/null; then
    say "installing pyfleet into .venv (editable, from pyproject.toml)"
    .venv/bin/python -m pip install -q --no-deps -e . || die "pip install -e . failed; see above"
fi

cstamp=.venv/.pyfleet-collections.sha256
cwant="$(sha256sum requirements.yml | cut -d' ' -f1)"
if [ "$(cat "$cstamp" 2>/dev/null)" != "$cwant" ]; then
    .venv/bin/ansible-galaxy collection install -r requirements.yml >/dev/null \
        || die "ansible-galaxy collection install -r requirements.yml failed; check requirements.yml"
    echo "$cwant" > "$cstamp"
fi
say "ready in ${SECONDS} s: .venv/bin/fab --list shows the commands"
