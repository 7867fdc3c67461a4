"""How long a release venv takes to build on a lab host: uv (cold and warm cache) against pip.

Uses what a deploy left on the host: the app's unpacked wheelhouse of its
current release (/srv/<app>/wheelhouse/<hash>/, the app and every pinned
dependency) and the uv binary unpacked from it. Each build is the deploy's own
offline install (no index); pip gets the same lock and wheels. Bounded: three
builds, each with a timeout. Needs the lab up with the app deployed (`fab up`).

Usage: .venv/bin/python bench/venv_build.py [app] [host]
"""

import json
import subprocess
import sys
from pathlib import Path

from pyfleet import inventory, lab

ROOT = Path(__file__).resolve().parent.parent

REMOTE = r"""
import glob, json, os, shutil, subprocess, sys, tempfile, time
app = sys.argv[1]
base = f"/srv/{app}"
# The release's metadata names the wheelhouse it was built from.
meta = json.load(open(os.path.join(os.path.realpath(f"{base}/current"), ".pyfleet-release.json")))
house = meta["wheelhouse"]
lock = os.path.join(house, "requirements.lock")
uv = sorted(glob.glob("/opt/pyfleet/uv/*/uv"))[-1]
work = tempfile.mkdtemp(prefix="venv-bench-")
cache = os.path.join(work, "uv-cache")
env = dict(os.environ, UV_CACHE_DIR=cache, UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never",
           PIP_DISABLE_PIP_VERSION_CHECK="1")

def timed(*commands):
    start = time.monotonic()
    for cmd in commands:
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)
    return round(time.monotonic() - start, 2)

def uv_build(venv):
    return timed([uv, "venv", "--quiet", "--python", "/usr/bin/python3", venv],
                 [uv, "pip", "install", "--quiet", "--offline", "--no-index", "--find-links", house,
                  "--python", f"{venv}/bin/python", "-r", lock])

try:
    figures = {
        "uv, cold cache": uv_build(f"{work}/uv-cold"),
        "uv, warm cache": uv_build(f"{work}/uv-warm"),
        "pip": timed(["/usr/bin/python3", "-m", "venv", f"{work}/pip"],
                     [f"{work}/pip/bin/pip", "install", "--quiet", "--isolated", "--no-index", "--no-compile",
                      "--find-links", house, "-r", lock]),
    }
    packages = sum(1 for line in open(lock) if "==" in line)
    print(json.dumps({"packages": packages, "figures": figures}))
finally:
    shutil.rmtree(work, ignore_errors=True)
"""


def main():
    app = sys.argv[1] if len(sys.argv) > 1 else "hello"
    host = sys.argv[2] if len(sys.argv) > 2 else "web1"
    inv = inventory.load("inventory/lab")
    conn = inv.hosts[host]
    out = subprocess.run(
        [
            "ssh",
            *lab.ssh_options(lab.Lab(inv)),
            "-i",
            conn["ansible_ssh_private_key_file"],
            f"{lab.LAB_USER}@{conn['ansible_host']}",
            f"sudo -n timeout 900 python3 - {app}",
        ],
        input=REMOTE,
        capture_output=True,
        text=True,
        timeout=960,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"venv bench on {host} failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    data = json.loads(out.stdout)
    figures = data["figures"]
    print(f"release venv of {app} on {host} ({data['packages']} pinned packages, offline from the wheelhouse):")
    for name, seconds in figures.items():
        print(f"  {name:16s} {seconds:6.2f} s")
    print(f"  pip / uv (cold): {figures['pip'] / figures['uv, cold cache']:.1f}x")


if __name__ == "__main__":
    main()
