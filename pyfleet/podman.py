"""podman, always with the project's containers.conf (runc, lower ulimits)."""

import os
import shutil

from pyfleet.errors import PyfleetError
from pyfleet.shell import ROOT, run

CONTAINERS_CONF = ROOT / "lab" / "containers.conf"


def podman_env():
    """Environment for podman: the project's settings through CONTAINERS_CONF, /etc untouched."""
    return dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF))


def podman(*args, check=True, what=None, fix="see podman's message", timeout=300, input_text=None):
    """Run ``podman ARGS``; raise a one-line PyfleetError when it fails and ``check`` is set."""
    if not shutil.which("podman"):
        raise PyfleetError("podman is not installed; run ./bootstrap.sh")
    if os.geteuid() != 0:
        raise PyfleetError("the lab needs root for podman; run fab as root (sudo .venv/bin/fab ...)")
    return run(
        ["podman", *args],
        env={"CONTAINERS_CONF": str(CONTAINERS_CONF)},
        check=check,
        what=what or f"podman {args[0]}",
        fix=fix,
        timeout=timeout,
        input=input_text,
    )
