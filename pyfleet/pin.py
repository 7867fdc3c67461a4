"""`fab pin --app NAME`: the app's exact pins for the hosts' Python, made with uv.

The pins come from the app's project directory (``source.path``), first found of:

- ``uv.lock``: the project's own lock, taken as it is (``uv export --frozen``:
  no resolution, the versions the project was tested with);
- ``requirements.in``: top-level requirements, resolved;
- ``pyproject.toml``: ``[project] dependencies`` (plus ``--extra``), resolved;

or, for a ``source.requirement`` app, from that requirement. A resolution adds
the server the spec runs the app with (gunicorn, uvicorn: ``SERVER_PACKAGES``),
so a project need not name it. Resolution is uv's
universal mode from the oldest Python of the hosts pyfleet supports
(``HOST_TARGETS``), so one file serves Debian 12 and 13 hosts alike, with
markers where they differ; only wheels count (hosts install offline from a
wheelhouse). The result must then resolve, wheels only, for each of the hosts'
Pythons and platforms, and pin the server the app's kind needs; it is written
to the spec's ``requirements`` path (default ``<project>/requirements.txt``)
only when all of that holds. An existing file's pins are kept where they still
fit (uv prefers them) unless ``upgrade``.
"""

import shutil
import tempfile
from pathlib import Path

from pyfleet import wheelhouse
from pyfleet.apps import REQ_RE, SERVER_PACKAGES, pinned_names, requirement_lines
from pyfleet.errors import PyfleetError

# The hosts' Pythons and platforms (pyfleet/wheelhouse.py), oldest Python first:
# Debian 12 on x86_64 and Debian 13 on aarch64 cover both Pythons and both arches.
HOST_TARGETS = (wheelhouse.DEBIAN_12, wheelhouse.DEBIAN_13_ARM)
# What a project directory may pin from, in order of preference.
SOURCES = ("uv.lock", "requirements.in", "pyproject.toml")
DEFAULT_OUTPUT = "requirements.txt"
RESOLVE_FIX = "fix the requirement (it must exist with a wheel for the hosts' Python) and run fab pin again"


def pin_source(app):
    """``(kind, path)`` the app's pins come from: a file of SOURCES, or ("requirement", its text)."""
    source, name = app["source"], app["name"]
    if source["type"] == "requirement":
        return "requirement", source["requirement"]
    if source["type"] != "path":
        raise PyfleetError(
            f"app {name}: fab pin reads a project directory or a requirement source, not source.wheel; "
            "pin the wheel's dependencies in the project it was built from, or set source.path"
        )
    project = Path(source["path"])
    if not project.is_dir():
        raise PyfleetError(f"app {name}: source.path {project} is not a directory; fix source.path in pyfleet_apps")
    for file in SOURCES:
        if (project / file).is_file():
            return file, project / file
    raise PyfleetError(
        f"app {name}: {project} has none of {', '.join(SOURCES)}; "
        "point source.path at the project directory that holds its pyproject.toml"
    )


def output_path(app):
    """Where the pins go: the spec's ``requirements``, else requirements.txt in the project directory."""
    if app.get("requirements"):
        return Path(app["requirements"])
    if app["source"]["type"] != "path":
        # No project directory to put them in (and never this repository's own requirements.txt).
        raise PyfleetError(
            f"app {app['name']}: no requirements file to write; "
            f"set requirements: apps/{app['name']}-requirements.txt in its pyfleet_apps entry and run fab pin again"
        )
    return Path(app["source"]["path"]) / DEFAULT_OUTPUT


def resolve_args(uv, kind, src, out, extras=(), upgrade=False, servers=None):
    """The uv command that writes the pins of ``src`` (and the ``servers`` file) to ``out`` (``kind``: pin_source's)."""
    common = ["--quiet", "--no-header", "--no-annotate", "--output-file", out]
    extra_args = [arg for extra in extras for arg in ("--extra", extra)]
    if kind == "uv.lock":
        # The lock decides; export only writes it out (no dev group, not the project itself).
        project = str(Path(src).parent)
        export = [uv, "export", "--frozen", "--format", "requirements.txt", "--no-hashes", "--no-dev"]
        return [*export, "--no-emit-project", "--project", project, *extra_args, *common]
    args = [uv, "pip", "compile", "--universal", "--python-version", HOST_TARGETS[0].python_short]
    args += ["--only-binary", ":all:", *extra_args, *common]
    return args + (["--upgrade"] if upgrade else []) + [src] + ([servers] if servers else [])


def check_server(app, path):
    """The pins must hold the server the app's kind and server need (as the app spec demands).

    A resolution adds it; a uv.lock must have it already.
    """
    missing = [p for p in SERVER_PACKAGES[(app["kind"], app["server"])] if p not in pinned_names(path)]
    if missing:
        raise PyfleetError(
            f"app {app['name']}: the pins lack {', '.join(missing)}, which server {app['server']} needs for "
            f"{app['kind']} apps; add it to the project (uv add {' '.join(missing)}) and run fab pin again"
        )


def check_pinned(app, path):
    """Every line must be ``name==version`` (the app spec's rule): catches a lock with a path or URL dependency."""
    for number, line in requirement_lines(Path(path).read_text(encoding="utf-8")):
        if not REQ_RE.fullmatch(line.strip()):
            raise PyfleetError(
                f"app {app['name']}: line {number} of the pins ({line!r}) is not name==version; "
                "hosts install from wheels of an index: replace that path or URL dependency with a published version"
            )


def check_targets(uv, app, path, work):
    """The pins must resolve, wheels only, for each of the hosts' Pythons and platforms."""
    for target in HOST_TARGETS:
        args = [uv, "pip", "compile", "--quiet", "--only-binary", ":all:", "--python-version", target.python]
        args += ["--python-platform", target.uv_platform(), "--output-file", work / f"{target.key}.txt", path]
        wheelhouse._offline_first(
            args, f"app {app['name']}: checking its pins for Python {target.python} on {target.arch}", RESOLVE_FIX
        )


def header(app, kind):
    """The comment the pins file starts with: what made it and how to make it again."""
    made_from = "the requirement source" if kind == "requirement" else kind
    return (
        f"# Exact pins of app {app['name']} (from {made_from}) for the hosts' Python "
        f"{HOST_TARGETS[0].python_short} and newer on Linux.\n"
        f"# Made by fab pin --app {app['name']}; run it again after a dependency changes.\n"
    )


def pin(app, extras=(), upgrade=False):
    """Write the app's pins; returns ``(path, number of pins, kind of source)``. One-line PyfleetError on failure."""
    uv = wheelhouse.find_uv()
    if not uv:
        raise PyfleetError("uv is not installed on the controller; run ./bootstrap.sh")
    kind, src = pin_source(app)
    out = output_path(app)
    with tempfile.TemporaryDirectory(prefix="pyfleet-pin-") as tmp:
        work = Path(tmp)
        draft = work / DEFAULT_OUTPUT
        if kind == "requirement":
            (work / "requirements.in").write_text(src + "\n", encoding="utf-8")
            src = work / "requirements.in"
        servers = work / "servers.in"
        # The server the spec runs the app with is pinned too, whether or not the project names it.
        servers.write_text("".join(f"{p}\n" for p in SERVER_PACKAGES[(app["kind"], app["server"])]))
        if out.is_file() and not upgrade:
            shutil.copyfile(out, draft)  # uv keeps the pins it finds in its output file where they still fit
        what = f"app {app['name']}: pinning {src}"
        args = resolve_args(uv, kind, src, draft, extras, upgrade, servers)
        wheelhouse._offline_first(args, what, RESOLVE_FIX)
        check_pinned(app, draft)
        check_server(app, draft)
        check_targets(uv, app, draft, work)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(header(app, kind) + draft.read_text(encoding="utf-8"), encoding="utf-8")
    return out, len(pinned_names(out)), kind
