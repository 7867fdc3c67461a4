"""Run controller commands and turn their failures into one-line PyfleetErrors."""

import os
import shutil
import subprocess
from pathlib import Path

from pyfleet.errors import PyfleetError

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"


def tool(name):
    """Path of a controller tool: the project's venv first, then PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise PyfleetError(f"{name} is not installed; run ./bootstrap.sh")
    return found


def last_line(text):
    """The last non-empty line of a tool's output: usually the one that says why."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def run(args, *, what, fix, env=None, input=None, check=True, capture=True, timeout=None):
    """Run ``args``; on failure raise PyfleetError "<what> failed: <reason>; <fix>".

    ``what`` says what was attempted, ``fix`` what the user can do about it.
    Returns the CompletedProcess (stdout/stderr as text when captured).
    """
    full_env = dict(os.environ, **(env or {}))
    try:
        proc = subprocess.run(
            [str(a) for a in args],
            env=full_env,
            input=input,
            text=True,
            capture_output=capture,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise PyfleetError(f"{what} failed: {args[0]} is not installed; run ./bootstrap.sh") from None
    except subprocess.TimeoutExpired:
        raise PyfleetError(f"{what} timed out after {timeout} s; {fix}") from None
    if check and proc.returncode != 0:
        reason = last_line(proc.stderr) if capture else f"exit code {proc.returncode}"
        if capture and reason == "no output":
            reason = last_line(proc.stdout)
        raise PyfleetError(f"{what} failed: {reason}; {fix}")
    return proc
