"""Build an app's wheelhouse on the controller, once per deploy.

A wheelhouse is a directory the hosts install a release venv from with no
package index: every host of a target gets the same bytes. It holds

- the app's wheel (built from a path or sdist source, copied from a wheel
  source, or fetched for a requirement source);
- a wheel of every dependency, for the *hosts'* Python and platform (which may
  differ from the controller's);
- ``uv/uv-<version>-...whl``: uv itself, so hosts install uv offline too;
- ``static/``: the app's ``static_dir`` (from the project directory for a
  path source, from inside the app's wheel otherwise), for nginx to serve;
- ``requirements.lock``: ``name==version`` for everything to install into the
  venv, the app included (uv is not in it: it is a tool, not an app package);
- ``MANIFEST.json``: the sha256 of every file and a ``content_hash`` of the
  whole set; the same inputs give the same hash, so hosts can tell whether
  the wheelhouse changed.

Downloads are kept in a cache (``.cache/wheels`` by default), so a deploy that
only changes the app's code downloads nothing. Resolution uses ``uv pip
compile`` for the hosts' exact Python version (markers such as
``python_full_version < '3.11.3'`` matter: Debian 12 has 3.11.2); without uv,
pip resolves for the controller's interpreter, and a check of every wheel's
dependencies for the hosts' Python catches what that misses.

Every failure is a one-line PyfleetError naming the app, what failed (with the
tool's last line of output) and the fix.
"""

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from pyfleet.apps import SERVER_PACKAGES, requirement_lines
from pyfleet.errors import PyfleetError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / ".cache" / "wheels"
# uv for the hosts when the controller has none to match.
DEFAULT_UV_VERSION = "0.13.9"
# Zip timestamps of the app's wheel: fixed, so the same code builds the same bytes.
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest a zip can hold
MANIFEST = "MANIFEST.json"
LOCK = "requirements.lock"
MANIFEST_FORMAT = 1
# uv's --python-platform knows manylinux_2_17 .. manylinux_2_40.
UV_GLIBC_RANGE = (17, 40)


@dataclass(frozen=True)
class Target:
    """The hosts' Python and platform that a wheelhouse is built for.

    ``python`` is the full version (``3.11.2``): dependency markers may compare
    it. ``arch`` is ``x86_64`` or ``aarch64``; ``glibc`` the hosts' glibc.
    """

    python: str = "3.11.2"
    arch: str = "x86_64"
    glibc: str = "2.36"

    @classmethod
    def from_facts(cls, python, arch, glibc):
        """A Target from Ansible facts (``ansible_python_version``,
        ``ansible_architecture``, glibc version); ``amd64``/``arm64`` are accepted."""
        arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(str(arch), str(arch))
        target = cls(str(python), arch, str(glibc))
        target.check()
        return target

    def check(self):
        """Raise PyfleetError unless this is a target pyfleet can build for."""
        if not re.fullmatch(r"3\.\d+\.\d+", self.python):
            raise PyfleetError(f"target python {self.python!r} is not a full version; give it as 3.11.2")
        if self.arch not in ("x86_64", "aarch64"):
            raise PyfleetError(f"target arch {self.arch!r} is not supported; hosts must be x86_64 or aarch64")
        if not re.fullmatch(r"2\.\d+", self.glibc):
            raise PyfleetError(f"target glibc {self.glibc!r} is not a version like 2.36; give the hosts' glibc")

    @property
    def python_short(self):
        """``3.11`` of ``3.11.2``."""
        return ".".join(self.python.split(".")[:2])

    @property
    def abi(self):
        """The CPython ABI tag, ``cp311``."""
        return "cp" + self.python_short.replace(".", "")

    @property
    def key(self):
        """A short name for file names and messages: ``cp311-x86_64-glibc2.36``."""
        return f"{self.abi}-{self.arch}-glibc{self.glibc}"

    def platform_tags(self):
        """manylinux tags the hosts accept, most specific first (as pip orders them)."""
        newest = int(self.glibc.split(".")[1])
        oldest = 17 if self.arch == "aarch64" else 5
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags = []
        for minor in range(newest, oldest - 1, -1):
            tags.append(f"manylinux_2_{minor}_{self.arch}")
            if minor in legacy:
                tags.append(f"{legacy[minor]}_{self.arch}")
        return tags

    def supported_tags(self):
        """Every wheel tag the hosts' Python accepts, best first."""
        version = tuple(int(p) for p in self.python_short.split("."))
        platforms = self.platform_tags()
        tags = list(cpython_tags(version, abis=[self.abi], platforms=platforms))
        tags += list(compatible_tags(version, self.abi, platforms))
        return tags

    def uv_platform(self):
        """The ``--python-platform`` value for uv (its newest glibc is 2.40)."""
        minor = min(max(int(self.glibc.split(".")[1]), UV_GLIBC_RANGE[0]), UV_GLIBC_RANGE[1])
        return f"{self.arch}-manylinux_2_{minor}"

    def marker_environment(self):
        """PEP 508 marker values on the hosts."""
        return {
            "implementation_name": "cpython",
            "implementation_version": self.python,
            "os_name": "posix",
            "platform_machine": self.arch,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": self.python,
            "python_version": self.python_short,
            "sys_platform": "linux",
        }


DEBIAN_12 = Target("3.11.2", "x86_64", "2.36")
DEBIAN_13_ARM = Target("3.13.5", "aarch64", "2.41")


@dataclass(frozen=True)
class EntryCheck:
    """What check_entry_importable did: ``checked`` False means skipped, ``detail`` why."""

    checked: bool
    detail: str


# --- public --------------------------------------------------------------------


def build_wheelhouse(app, dest_dir, target=DEBIAN_12, cache_dir=None, uv_version=None):
    """Build the wheelhouse of ``app`` (a dict from ``normalize_apps``) in ``dest_dir``.

    ``target``: the hosts' Python and platform (a Target; one wheelhouse per
    distinct target among the hosts). ``cache_dir``: where downloaded wheels
    are kept between deploys (default ``<repo>/.cache/wheels``).
    ``uv_version``: the uv wheel to ship to the hosts (default: the
    controller's uv, else DEFAULT_UV_VERSION).

    ``dest_dir`` is replaced as a whole only once the build succeeded.
    Returns the manifest (also written to ``dest_dir/MANIFEST.json``).
    Raises PyfleetError (one line) when the source is missing, the build or a
    download fails, a requirement does not resolve, or the set is incomplete.
    """
    target.check()
    name = app["name"]
    dest = Path(dest_dir)
    cache = Path(cache_dir) if cache_dir else DEFAULT_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        app_wheel = _app_wheel(app, work / "build", target, cache)
        project, app_version = _wheel_identity(app_wheel)
        pins = _resolve(app, app_wheel, project, target, work)
        wheels = _fetch(name, pins, target, cache)
        uv_wheel = _fetch(name, {"uv": uv_version or controller_uv_version()}, target, cache)["uv"]
        wheels[project] = app_wheel
        _check_closure(name, project, wheels, target, app.get("requirements"))
        _check_server_packages(app, wheels)
        house = work / "house"
        (house / "uv").mkdir(parents=True)
        for path in wheels.values():
            shutil.copy2(path, house / path.name)
        shutil.copy2(uv_wheel, house / "uv" / uv_wheel.name)
        _copy_static(app, app_wheel, house / "static")
        lock = "".join(f"{n}=={_wheel_identity(p)[1]}\n" for n, p in sorted(wheels.items()))
        (house / LOCK).write_text(lock, encoding="utf-8")
        manifest = _manifest(house, target, project, app_version, app_wheel.name, uv_wheel.name, pins, app)
        (house / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _replace_dir(house, dest)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Directories whose files never go into a wheel but change when tests, tools or a
# build run (setuptools writes build/ at the project's top and *.egg-info in it).
FINGERPRINT_SKIP = frozenset({".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".nox"})
FINGERPRINT_FORMAT = 1


def input_fingerprint(app, target, uv_version, revision=""):
    """One digest of everything a wheelhouse is built from (``build_or_reuse`` compares it).

    The app's source, requirements and static_dir settings; every file of a path
    source (name, size and modification time: an edit, a checkout or a new file
    changes it; .git, caches and bytecode left out), the git ``revision`` (a
    version from setuptools-scm follows commits); the requirements file's bytes;
    the hosts' target and the uv shipped to them.
    """
    source = app["source"]
    digest = hashlib.sha256(
        json.dumps(
            [
                FINGERPRINT_FORMAT,
                MANIFEST_FORMAT,
                source,
                app.get("requirements"),
                app.get("static_dir"),
                asdict(target),
                uv_version,
                revision,
            ],
            sort_keys=True,
        ).encode()
    )
    if source["type"] != "requirement":
        for rel, stat in _tree_stats(Path(source[source["type"]])):
            digest.update(f"{rel} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    requirements = app.get("requirements")
    if requirements and Path(requirements).is_file():
        digest.update(_sha256(requirements).encode())
    return digest.hexdigest()


def _tree_stats(path):
    """``(relative path, stat)`` of every file under ``path`` (or of ``path`` itself), sorted."""
    if not path.is_dir():
        return [(path.name, path.stat())] if path.exists() else []
    found = []
    for top, dirs, files in os.walk(path):
        dirs[:] = [
            d
            for d in dirs
            if d not in FINGERPRINT_SKIP and not d.endswith(".egg-info") and not (d == "build" and top == str(path))
        ]
        for name in files:
            if not name.endswith(".pyc"):
                full = os.path.join(top, name)
                found.append((os.path.relpath(full, path), os.stat(full)))
    return sorted(found, key=lambda item: item[0])


def build_or_reuse(app, dest_dir, target, revision="", cache_dir=None):
    """``build_wheelhouse``, skipped when ``dest_dir`` was built from the same inputs.

    A deploy or converge of unchanged apps then costs no build (uv's wheel build
    and resolution took about a second per app and target). A wheelhouse with
    unpinned dependencies is always rebuilt: resolving again may pick newer ones.
    """
    dest = Path(dest_dir)
    stamp = dest.with_name(f"{dest.name}.inputs")
    inputs = input_fingerprint(app, target, controller_uv_version(), revision)
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == inputs and (dest / MANIFEST).is_file():
        manifest = read_manifest(dest)
        if not manifest.get("unpinned"):
            return manifest
    stamp.unlink(missing_ok=True)
    manifest = build_wheelhouse(app, dest, target=target, cache_dir=cache_dir)
    stamp.write_text(inputs, encoding="utf-8")
    return manifest


def read_manifest(wheelhouse_dir):
    """The MANIFEST.json of a built wheelhouse, as a dict."""
    path = Path(wheelhouse_dir) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PyfleetError(f"{path}: not a readable wheelhouse manifest ({exc}); rebuild the wheelhouse") from None


def check_entry_importable(wheelhouse_dir, app, tool=None):
    """Install the wheelhouse into a throwaway venv here and import the app's entry.

    Catches a wrong ``entry`` or a missing dependency before any host is
    touched. Runs only when the controller can run the hosts' wheels (same
    Python major.minor and architecture, glibc at least the hosts'); else
    returns ``EntryCheck(False, reason)``. Returns ``EntryCheck(True, ...)``
    when the entry imports; raises PyfleetError "entry X does not import: <last
    line of the error>" when it does not. The app's env and secrets are set
    for the import; secret values are scrubbed from the message.
    """
    manifest = read_manifest(wheelhouse_dir)
    target = Target(**manifest["target"])
    reason = _cannot_run_here(target)
    if reason:
        return EntryCheck(False, f"skipped: {reason}")
    name, entry = app["name"], app["entry"]
    with tempfile.TemporaryDirectory(prefix="pyfleet-entry-") as tmp:
        python = build_venv(wheelhouse_dir, Path(tmp) / "venv", tool=tool, app_name=name)
        env = dict(os.environ, **app.get("env", {}), **app.get("secrets", {}), PYFLEET_RELEASE="entry-check")
        env.pop("PYTHONPATH", None)
        proc = subprocess.run(
            [python, "-I", "-c", _IMPORT_ENTRY, app["module"], app["callable"]],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if proc.returncode != 0:
        why = _scrub(_last_line(proc.stderr or proc.stdout), app.get("secrets", {}))
        raise PyfleetError(
            f"app {name}: entry {entry} does not import: {why}; "
            "fix entry, or add the missing package to the app's requirements"
        )
    return EntryCheck(True, f"entry {entry} imports on Python {platform.python_version()}")


def build_venv(wheelhouse_dir, venv_dir, tool=None, python=None, app_name=None):
    """Create a venv at ``venv_dir`` from the wheelhouse alone (no index).

    ``tool``: "uv" or "pip" (default: uv when available). ``python``: the
    interpreter for the venv (default: this one). This is what a host does
    for each release; on the controller it serves the entry check and timing.
    Returns the venv's python path.
    """
    wheelhouse = Path(wheelhouse_dir).resolve()
    venv = Path(venv_dir)
    python = python or sys.executable
    uv = find_uv() if tool in (None, "uv") else None
    if tool == "uv" and not uv:
        raise PyfleetError("uv is not installed on the controller; run ./bootstrap.sh")
    who = f"app {app_name}: " if app_name else ""
    fix = "rebuild the wheelhouse (it is incomplete or for another Python)"
    venv_python = venv / "bin" / "python"
    if uv:
        _run([uv, "venv", "--quiet", "--python", python, venv], f"{who}creating a venv with uv", fix)
        install = [uv, "pip", "install", "--quiet", "--offline", "--no-index", "--python", venv_python]
    else:
        _run([python, "-m", "venv", venv], f"{who}creating a venv", fix)
        install = [venv_python, "-m", "pip", "install", "--quiet", "--isolated", "--no-index"]
    install += ["--find-links", wheelhouse, "-r", wheelhouse / LOCK]
    _run(install, f"{who}installing the wheelhouse into a venv", fix)
    return str(venv_python)


def find_uv():
    """The controller's uv: beside this Python, then the uv package, then PATH; or None.

    PYFLEET_NO_UV=1 pretends there is none (to exercise the pip fallback).
    """
    if os.environ.get("PYFLEET_NO_UV") == "1":
        return None
    beside = Path(sys.executable).parent / "uv"
    if beside.is_file():
        return str(beside)
    try:
        from uv import find_uv_bin  # the uv wheel's helper

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def controller_uv_version():
    """The controller's uv version (shipped to the hosts too), else DEFAULT_UV_VERSION."""
    uv = find_uv()
    if uv:
        out = subprocess.run([uv, "--version"], capture_output=True, text=True, check=False).stdout
        match = re.match(r"uv (\d+\.\d+\.\d+)", out)
        if match:
            return match.group(1)
    try:
        return metadata.version("uv")
    except metadata.PackageNotFoundError:
        return DEFAULT_UV_VERSION


def content_hash(wheelhouse_dir):
    """Recompute the content hash of a wheelhouse (compare with its manifest)."""
    manifest = read_manifest(wheelhouse_dir)
    return _content_hash(Path(wheelhouse_dir), Target(**manifest["target"]), manifest["app_wheel"])


# --- the app's own wheel ----------------------------------------------------------


def _app_wheel(app, build_dir, target, cache):
    """Build, copy or fetch the app's wheel into ``build_dir``; return its path."""
    name, source = app["name"], app["source"]
    build_dir.mkdir(parents=True)
    kind = source["type"]
    if kind == "requirement":
        project = canonicalize_name(source["name"])
        fetched = _fetch(name, {project: source["version"]}, target, cache)[project]
        return Path(shutil.copy2(fetched, build_dir / fetched.name))
    path = Path(source[kind])
    if not path.exists():
        raise PyfleetError(f"app {name}: source {kind} {path} does not exist; fix pyfleet_apps source.{kind}")
    if kind == "wheel" and path.name.endswith(".whl"):
        _wheel_identity(path, name)
        return Path(shutil.copy2(path, build_dir / path.name))
    return _build_wheel(name, path, build_dir)


def _build_wheel(name, path, out_dir):
    """Build a wheel from a project directory or an sdist, reproducibly."""
    env = {"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
    uv = find_uv()
    what = f"app {name}: building a wheel from {path}"
    fix = "fix the project so that `uv build --wheel` works there"
    if uv:
        _offline_first([uv, "build", "--quiet", "--wheel", "--out-dir", out_dir, path], what, fix, env)
    else:
        args = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out_dir, path]
        _run(args, what, fix, env)
    built = sorted(out_dir.glob("*.whl"))
    if len(built) != 1:
        raise PyfleetError(f"{what} gave {len(built)} wheels, not 1; build one project per app")
    return built[0]


def _copy_static(app, app_wheel, dest):
    """Copy the app's static_dir into ``dest``, if it has one.

    For a path source static_dir is relative to the project directory; for a
    wheel, sdist or requirement source it is a directory inside the installed
    package tree (``myapp/static``), taken from the app's wheel.
    """
    static = app.get("static_dir")
    if not static:
        return
    name, source = app["name"], app["source"]
    fix = "fix static_dir (relative to the project, or to site-packages for a wheel) or set it to null"
    if source["type"] == "path":
        src = Path(source["path"]) / static
        if not src.is_dir():
            raise PyfleetError(f"app {name}: static_dir {src} is not a directory; {fix}")
        shutil.copytree(src, dest)
        return
    prefix = static.strip("/") + "/"
    with zipfile.ZipFile(app_wheel) as zf:
        members = [m for m in zf.namelist() if m.startswith(prefix) and not m.endswith("/")]
        if not members:
            raise PyfleetError(f"app {name}: static_dir {static} is not in {app_wheel.name}; {fix}")
        for member in members:
            rel = Path(member[len(prefix) :])
            if rel.is_absolute() or ".." in rel.parts:  # a wheel from an index is not ours to trust
                raise PyfleetError(
                    f"app {name}: {app_wheel.name} holds {member}, which leaves static_dir {static}; "
                    "rebuild the wheel without it"
                )
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(member))


# --- resolving the set ------------------------------------------------------------


def _resolve(app, app_wheel, project, target, work):
    """``{canonical name: version}`` of every dependency to install for ``target``.

    The input is the app's own requirements (from its wheel's metadata) plus
    the pinned requirements file, minus the app itself.
    """
    name = app["name"]
    lines = [str(r) for r in _requires(app_wheel)]
    req_file = app.get("requirements")
    if req_file:
        if not Path(req_file).is_file():
            raise PyfleetError(
                f"app {name}: requirements file {req_file} does not exist; fix pyfleet_apps requirements"
            )
        for _, line in requirement_lines(Path(req_file).read_text(encoding="utf-8")):
            line = line.split(" --hash")[0].strip()
            if _requirement_name(line) != project:
                lines.append(line)
    if not lines:
        return {}
    uv = find_uv()
    if uv:
        return _resolve_uv(uv, name, lines, target, work)
    return _resolve_pip(name, lines, target, work)


def _resolve_uv(uv, name, lines, target, work):
    """Resolve with ``uv pip compile`` for the hosts' exact Python and platform."""
    infile = work / "resolve.in"
    infile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = [
        uv,
        "pip",
        "compile",
        "--quiet",
        "--no-header",
        "--no-annotate",
        "--only-binary",
        ":all:",
        "--python-version",
        target.python,
        "--python-platform",
        target.uv_platform(),
        infile,
    ]
    out = _offline_first(
        args,
        f"app {name}: resolving its requirements for Python {target.python} on {target.arch}",
        "fix the requirement (name and version must exist with a wheel for the hosts) and re-pin",
    )
    return _parse_pins(out)


def _resolve_pip(name, lines, target, work):
    """Resolve with ``pip download`` (markers follow this Python; the closure check catches the rest)."""
    # pip evaluates markers for this interpreter, not the hosts': decide the
    # top-level ones here (a complete pinned file has every package top-level).
    env = target.marker_environment()
    kept = []
    for line in lines:
        req = _parse_requirement(line)
        if req and req.marker:
            if not req.marker.evaluate(dict(env, extra="")):
                continue
            req.marker = None
        kept.append(str(req) if req else line)
    infile = work / "resolve.in"
    infile.write_text("\n".join(kept) + "\n", encoding="utf-8")
    dl = work / "resolve"
    args = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--dest",
        dl,
        *_pip_target_args(target),
        "-r",
        infile,
    ]
    _run(
        args,
        f"app {name}: resolving its requirements for Python {target.python} on {target.arch}",
        "fix the requirement (name and version must exist with a wheel for the hosts) and re-pin",
    )
    pins = {}
    for path in dl.glob("*.whl"):
        project, version = _wheel_identity(path)
        pins[project] = version
    return pins


def _parse_pins(text):
    """``name==version`` lines of uv's output → ``{canonical name: version}``."""
    pins = {}
    for _, line in requirement_lines(text):
        match = re.match(r"([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^\s;]+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(3)
    return pins


# --- fetching wheels --------------------------------------------------------------


def _fetch(name, pins, target, cache):
    """Paths of cached wheels for ``{project: version}``, downloading the missing ones.

    The cache is a flat directory of wheels; the best-tagged compatible wheel
    wins, as pip would choose it.
    """
    found = {p: _cached_wheel(cache, p, v, target) for p, v in pins.items()}
    missing = sorted(f"{p}=={pins[p]}" for p, path in found.items() if path is None)
    if missing:
        _download(name, missing, target, cache)
        for project in pins:
            found[project] = found[project] or _cached_wheel(cache, project, pins[project], target)
    still = sorted(f"{p}=={pins[p]}" for p, path in found.items() if path is None)
    if still:
        raise PyfleetError(
            f"app {name}: no wheel of {', '.join(still)} for Python {target.python_short} on "
            f"{target.arch} glibc {target.glibc}; pin a version that ships one"
        )
    return found


def _cached_wheel(cache, project, version, target):
    """The best cached wheel of ``project==version`` for ``target``, or None."""
    rank = {tag: i for i, tag in enumerate(target.supported_tags())}
    best, best_rank = None, None
    wanted = Version(version)
    prefix = project.replace("-", "_")
    for path in cache.glob("*.whl"):
        if not re.sub(r"[-_.]+", "_", path.name.lower()).startswith(prefix):
            continue  # cheap filter before parsing (zope.interface-... is zope-interface)
        try:
            got_name, got_version, _, tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        if got_name != project or got_version != wanted:
            continue
        ranks = [rank[t] for t in tags if t in rank]
        if ranks and (best_rank is None or min(ranks) < best_rank):
            best, best_rank = path, min(ranks)
    return best


def _download(name, requirements, target, cache):
    """Download exact pins (no deps) for ``target`` into ``cache``, atomically per file."""
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as tmp:
        args = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp]
        args += [*_pip_target_args(target), *requirements]
        _run(
            args,
            f"app {name}: downloading {', '.join(requirements)} for Python {target.python_short} on {target.arch}",
            "check the pins exist with a wheel for the hosts, and that the package index is reachable",
        )
        for path in Path(tmp).glob("*.whl"):
            os.replace(path, cache / path.name)


def _pip_target_args(target):
    """pip options that make it choose wheels for the hosts, not for this machine."""
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", target.python]
    for abi in (target.abi, "abi3", "none"):
        args += ["--abi", abi]
    for tag in target.platform_tags():
        args += ["--platform", tag]
    return args


# --- checks of the whole set ------------------------------------------------------


def _check_closure(name, project, wheels, target, req_file):
    """Every dependency each wheel needs on the hosts' Python is in the set, in range."""
    env = target.marker_environment()
    versions = {p: Version(_wheel_identity(w)[1]) for p, w in wheels.items()}
    todo, seen = [(project, frozenset())], set()
    if req_file:
        for _, line in requirement_lines(Path(req_file).read_text(encoding="utf-8")):
            req = _parse_requirement(line.split(" --hash")[0])
            if req and canonicalize_name(req.name) in wheels:
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    while todo:
        current, extras = todo.pop()
        if (current, extras) in seen:
            continue
        seen.add((current, extras))
        for req in _requires(wheels[current]):
            if req.marker and not any(req.marker.evaluate(dict(env, extra=e)) for e in ("", *extras)):
                continue
            dep = canonicalize_name(req.name)
            if dep not in versions:
                raise PyfleetError(
                    f"app {name}: {current} needs {req.name} on Python {target.python}, "
                    f"which the wheelhouse lacks; add {req.name}==<version> to the requirements file and re-pin"
                )
            if req.specifier and not req.specifier.contains(versions[dep], prereleases=True):
                raise PyfleetError(
                    f"app {name}: {current} needs {req.name}{req.specifier}, but {dep}=={versions[dep]} is pinned; "
                    "re-pin the requirements file (uv pip compile)"
                )
            todo.append((dep, frozenset(req.extras)))


def _check_server_packages(app, wheels):
    """The venv must contain the app server the spec asks for."""
    key = (app["kind"], app["server"])
    missing = [p for p in SERVER_PACKAGES.get(key, ()) if p not in wheels]
    if missing:
        raise PyfleetError(
            f"app {app['name']}: the wheelhouse lacks {', '.join(missing)}, which server {app['server']} "
            f"needs for {app['kind']} apps; add {', '.join(m + '==<version>' for m in missing)} to its requirements"
        )


def _cannot_run_here(target):
    """Why the controller cannot run the hosts' wheels, or None if it can."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if here != target.python_short:
        return f"the controller runs Python {here}, the hosts {target.python_short}"
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine())
    if machine != target.arch:
        return f"the controller is {machine}, the hosts {target.arch}"
    libc, version = platform.libc_ver()
    if libc != "glibc" or Version(version or "0") < Version(target.glibc):
        return (
            f"the controller's C library ({libc or 'unknown'} {version}) is older than the hosts' glibc {target.glibc}"
        )
    return None


# --- manifest -------------------------------------------------------------------


def _manifest(house, target, project, version, app_wheel, uv_wheel, pins, app):
    """The manifest dict: target, app, files with sha256, the content hash."""
    files = {
        str(path.relative_to(house)): _sha256(path)
        for path in sorted(house.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    pinned = _pinned_names(app.get("requirements"))
    return {
        "format": MANIFEST_FORMAT,
        "app": app["name"],
        "project": project,
        "version": version,
        "app_wheel": app_wheel,
        "uv_wheel": f"uv/{uv_wheel}",
        "target": asdict(target),
        "lock": LOCK,
        "static": "static" if (house / "static").is_dir() else None,
        # Dependencies the requirements file did not pin (resolved here): the
        # deploy works, but a later resolution may pick other versions.
        "unpinned": sorted(p for p in pins if pinned is not None and p not in pinned),
        "files": files,
        "content_hash": _content_hash(house, target, app_wheel),
    }


def _content_hash(house, target, app_wheel):
    """sha256 over the target and every file's content digest.

    The app's wheel is digested by its RECORD (the hashes of the files inside)
    rather than its zip bytes, which carry build timestamps and permissions.
    """
    digest = hashlib.sha256(f"pyfleet-wheelhouse {MANIFEST_FORMAT} {target.key} {target.python}\n".encode())
    for path in sorted(house.rglob("*")):
        if not path.is_file() or path.name == MANIFEST:
            continue
        rel = str(path.relative_to(house))
        value = _record_digest(path) if rel == app_wheel else _sha256(path)
        digest.update(f"{rel} {value}\n".encode())
    return "sha256:" + digest.hexdigest()


def _record_digest(wheel):
    """sha256 of a wheel's RECORD lines (sorted, RECORD's own line left out)."""
    with zipfile.ZipFile(wheel) as zf:
        record = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
        lines = zf.read(record).decode().splitlines()
    kept = sorted(line for line in lines if line and not line.split(",")[0].endswith(".dist-info/RECORD"))
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()


def _sha256(path):
    """sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- wheel metadata -------------------------------------------------------------


def _wheel_identity(path, app_name=None):
    """``(canonical name, version)`` from a wheel's file name."""
    try:
        project, version, _, _ = parse_wheel_filename(Path(path).name)
    except InvalidWheelFilename as exc:
        who = f"app {app_name}: " if app_name else ""
        raise PyfleetError(
            f"{who}{Path(path).name} is not a valid wheel file name ({exc}); rebuild the wheel"
        ) from None
    return str(project), str(version)


def _requires(wheel):
    """The Requires-Dist requirements of a wheel (from its METADATA)."""
    with zipfile.ZipFile(wheel) as zf:
        name = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1), None)
        if name is None:
            raise PyfleetError(f"{Path(wheel).name} has no METADATA; it is not a valid wheel, rebuild it")
        headers = HeaderParser().parsestr(zf.read(name).decode("utf-8"))
    return [r for r in (_parse_requirement(v) for v in headers.get_all("Requires-Dist") or []) if r]


def _parse_requirement(text):
    """A packaging Requirement, or None for text that is not one."""
    try:
        return Requirement(text.strip())
    except InvalidRequirement:
        return None


def _requirement_name(line):
    """The canonical project name a requirement line asks for, or None."""
    req = _parse_requirement(line)
    return canonicalize_name(req.name) if req else None


def _pinned_names(req_file):
    """Canonical names a requirements file pins, or None without one."""
    if not req_file or not Path(req_file).is_file():
        return None
    names = (_requirement_name(line.split(" --hash")[0]) for _, line in requirement_lines(Path(req_file).read_text()))
    return {n for n in names if n}


# --- running tools --------------------------------------------------------------


def _run(args, what, fix, env=None):
    """Run a tool; on failure raise "<what> failed: <its last line>; <fix>". Returns stdout."""
    full_env = dict(os.environ, **(env or {}))
    try:
        proc = subprocess.run([str(a) for a in args], env=full_env, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise PyfleetError(f"{what} failed: {exc}; {fix}") from None
    if proc.returncode != 0:
        raise PyfleetError(f"{what} failed: {_last_line(proc.stderr or proc.stdout)}; {fix}")
    return proc.stdout


def _offline_first(args, what, fix, env=None):
    """Run a uv command from uv's cache alone first; go online only if that fails.

    A redeploy whose inputs did not change then needs no network at all.
    """
    try:
        return _run([args[0], "--offline", *args[1:]], what, fix, env)
    except PyfleetError:
        return _run(args, what, fix, env)


def _last_line(text):
    """The last non-empty line of a tool's output, without uv's box drawing."""
    lines = [line.strip(" ╰─▶\u00d7│") for line in (text or "").splitlines()]  # \u00d7: uv's error mark
    lines = [line for line in lines if line and not line.startswith("hint:")]
    if not lines:
        return "no output"
    # "cause: Because ... unsatisfiable." reads better inside our sentence as "Because ... unsatisfiable".
    return re.sub(r"^(cause|error|ERROR):\s*", "", lines[-1]).rstrip(".")


def _scrub(text, secrets):
    """``text`` with every secret value replaced by ***."""
    for value in secrets.values():
        if value:
            text = text.replace(str(value), "***")
    return text


def _replace_dir(new, dest):
    """Put directory ``new`` at ``dest``, replacing what was there."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(dest, old)
    os.replace(new, dest)
    if old:
        shutil.rmtree(old, ignore_errors=True)


_IMPORT_ENTRY = """\
import importlib, sys
obj = importlib.import_module(sys.argv[1])
for part in sys.argv[2].split("."):
    obj = getattr(obj, part)
"""
