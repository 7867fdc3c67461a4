"""Fast tests of pyfleet.wheelhouse's deciding logic: no real build, resolution or download.

A stand-in for the tools (``FakeTools``, in place of the module's subprocess.run)
builds small wheels from a project directory, resolves from a directory of wheels
made by tests/unit/wheelmaker.py ("the index") and "downloads" by copying from
it, as uv and pip would. test_wheelhouse.py builds the real thing.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version
from wheelmaker import write_wheel

from pyfleet import wheelhouse
from pyfleet.apps import normalize_apps
from pyfleet.errors import PyfleetError
from pyfleet.wheelhouse import DEBIAN_12, DEBIAN_13_ARM, Target

UV = "/fake/bin/uv"
X86 = "manylinux_2_17_x86_64.manylinux2014_x86_64"
ARM = "manylinux_2_17_aarch64.manylinux2014_aarch64"


class FakeTools:
    """uv, pip and the venv's python, as the wheelhouse runs them (``subprocess.run``'s signature).

    ``fail``: {kind: (returncode, stderr)} makes a kind of call fail; ``offline_fails``
    makes every ``uv --offline`` call fail (an empty uv cache).
    """

    def __init__(self, index):
        self.index = index
        self.calls = []
        self.where = []
        self.fail = {}
        self.offline_fails = False
        self.import_result = (0, "", "")
        self.version_output = "uv 0.9.9 (abc 2025-01-01)\n"

    def kinds(self):
        return [kind for kind, _, _ in self.calls]

    def args_of(self, kind):
        return [args for k, args, _ in self.calls if k == kind]

    def __call__(self, args, env=None, capture_output=False, text=False, check=False, cwd=None, timeout=None):
        assert capture_output and text and not check
        assert all(isinstance(a, str) for a in args), args
        kind = self._kind(args)
        self.calls.append((kind, args, env))
        self.where.append((kind, cwd, timeout))
        if self.offline_fails and "--offline" in args:
            return subprocess.CompletedProcess(args, 2, "", "error: no cached wheels\n")
        if kind in self.fail:
            code, err = self.fail[kind]
            return subprocess.CompletedProcess(args, code, "", err)
        out = getattr(self, kind)(args, env or {})
        if isinstance(out, subprocess.CompletedProcess):
            return out
        return subprocess.CompletedProcess(args, 0, out or "", "")

    @staticmethod
    def _kind(args):
        rest = [a for a in args[1:] if a != "--offline"]
        if args[0] == UV:
            if rest[:1] == ["--version"]:
                return "version"
            if rest[0] == "pip":
                return {"compile": "compile", "install": "install"}[rest[1]]
            return {"build": "build", "venv": "venv"}[rest[0]]
        if rest[:2] == ["-m", "pip"]:
            if rest[2] == "download":
                return "download" if "--no-deps" in rest else "resolve"
            return {"wheel": "build", "install": "install"}[rest[2]]
        if rest[:2] == ["-m", "venv"]:
            return "venv"
        if rest[:2] == ["-I", "-c"]:
            return "entry"
        raise AssertionError(f"unexpected command {args}")

    def version(self, args, env):
        return self.version_output

    def build(self, args, env):
        out = Path(args[args.index("--out-dir" if "--out-dir" in args else "--wheel-dir") + 1])
        source = Path(args[-1])
        # A backend's default is the time of the build: each build here a few seconds later.
        stamp = env.get("SOURCE_DATE_EPOCH") or str(int(time.time()) + 4 * len(self.calls))
        if source.is_file():  # an sdist: name-version.tar.gz holding name-version/pyproject.toml
            with tarfile.open(source) as tar:
                tar.extractall(out / ".sdist", filter="data")
            (source,) = (out / ".sdist").iterdir()
        project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
        files = {}
        for path in sorted((source / project["name"]).rglob("*")):
            if path.is_file():
                files[path.relative_to(source).as_posix()] = path.read_bytes()
        saved = os.environ.get("SOURCE_DATE_EPOCH")
        os.environ["SOURCE_DATE_EPOCH"] = stamp
        try:
            write_wheel(out, project["name"], project["version"], files, requires=project.get("dependencies", ()))
        finally:
            os.environ.pop("SOURCE_DATE_EPOCH")
            if saved is not None:
                os.environ["SOURCE_DATE_EPOCH"] = saved
        shutil.rmtree(out / ".sdist", ignore_errors=True)

    def _index(self):
        found = {}
        for path in self.index.glob("*.whl"):
            name, version, _, _ = parse_wheel_filename(path.name)
            found.setdefault(str(name), {}).setdefault(version, []).append(path)
        return found

    def _closure(self, lines, env):
        """{name: version} of what ``lines`` need, as a resolver picks (highest version in range)."""
        index, pins, todo = self._index(), {}, [(line, "") for line in lines]
        while todo:
            line, extra = todo.pop()
            req = Requirement(line)
            if req.marker and not req.marker.evaluate(dict(env, extra=extra)):
                continue
            name = canonicalize_name(req.name)
            versions = [v for v in index.get(name, {}) if req.specifier.contains(v, prereleases=True)]
            if not versions:
                raise LookupError(f"No solution found: {req} is not in the index")
            version = pins.setdefault(name, max(versions))
            for extra_name in ("", *req.extras):
                todo += [(str(r), extra_name) for r in wheelhouse._requires(index[name][version][0])]
        return pins

    def compile(self, args, env):
        python = args[args.index("--python-version") + 1]
        lines = Path(args[-1]).read_text().splitlines()
        environment = dict(default_environment(), python_full_version=python, python_version=python[:4])
        try:
            pins = self._closure(lines, environment)
        except LookupError as exc:
            raise AssertionError("set fail['compile'] for a failing resolution") from exc
        return "".join(f"{n}=={v}\n" for n, v in sorted(pins.items()))

    def resolve(self, args, env):
        # pip evaluates markers for the interpreter it runs on, not for the hosts.
        pins = self._closure(Path(args[args.index("-r") + 1]).read_text().splitlines(), default_environment())
        dest = Path(args[args.index("--dest") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        for name, version in pins.items():
            shutil.copy2(self._index()[name][version][0], dest)

    def download(self, args, env):
        dest = Path(args[args.index("--dest") + 1])
        index = self._index()
        for arg in args:
            if "==" in arg:
                name, _, version = arg.partition("==")
                for path in index.get(name, {}).get(Version(version), []):
                    shutil.copy2(path, dest)

    def venv(self, args, env):
        pass

    def install(self, args, env):
        pass

    def entry(self, args, env):
        code, out, err = self.import_result
        return subprocess.CompletedProcess(args, code, out, err) if code else out


@pytest.fixture
def index(tmp_path):
    """The stand-in package index: a few wheels with real dependency edges."""
    path = tmp_path / "index"
    path.mkdir()
    write_wheel(
        path,
        "flask",
        "3.1.0",
        {"flask/__init__.py": ""},
        requires=["werkzeug>=3.1", "jinja2>=3.1"],
        extras={"async": ["asgiref>=3.2"]},
    )
    write_wheel(path, "asgiref", "3.8.1", {"asgiref/__init__.py": ""})
    write_wheel(path, "flask", "2.0.0", {"flask/__init__.py": ""}, requires=["werkzeug>=2"])
    write_wheel(path, "werkzeug", "3.1.3", {"werkzeug/__init__.py": ""})
    write_wheel(path, "jinja2", "3.1.6", {"jinja2/__init__.py": ""}, requires=["markupsafe>=2.0"])
    for tag in (
        f"cp311-cp311-{X86}",
        f"cp311-cp311-{ARM}",
        f"cp313-cp313-{X86}",
        f"cp313-cp313-{ARM}",
        f"cp38-abi3-{ARM}",
    ):
        write_wheel(path, "markupsafe", "3.0.2", {"markupsafe/__init__.py": ""}, tag=tag)
    write_wheel(path, "gunicorn", "23.0.0", {"gunicorn/__init__.py": ""})
    write_wheel(path, "async-timeout", "5.0.1", {"async_timeout/__init__.py": ""})
    for version in ("0.9.9", "0.8.0"):
        for tag in (f"py3-none-{X86}", f"py3-none-{ARM}"):
            write_wheel(path, "uv", version, tag=tag)
    return path


@pytest.fixture
def tools(index, monkeypatch):
    fake = FakeTools(index)
    monkeypatch.setattr(wheelhouse, "subprocess", SimpleNamespace(run=fake, CompletedProcess=None))
    monkeypatch.setattr(wheelhouse, "find_uv", lambda: UV)
    return fake


def make_project(base, name="demo", version="1.0", dependencies=("flask>=3",), static=True):
    """A project directory: pyproject.toml, its package, a static directory."""
    project = base / name
    (project / name).mkdir(parents=True)
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [{deps}]\n'
    )
    (project / name / "__init__.py").write_text("app = object()\n")
    (project / name / "assets").mkdir()
    (project / name / "assets" / "logo.svg").write_text("<svg/>")
    if static:
        (project / "static" / "css").mkdir(parents=True)
        (project / "static" / "css" / "app.css").write_text("body {}\n")
    return project


def make_app(tmp_path, source=None, requirements="default", **overrides):
    """A normalised app spec with a project directory source and a pinned requirements file."""
    if source is None:
        source = {"path": str(make_project(tmp_path))}
    if requirements == "default":
        requirements = tmp_path / "requirements.txt"
        requirements.write_text(
            "# pinned\nflask==3.1.0\nwerkzeug==3.1.3 \\\n    --hash=sha256:abc\njinja2==3.1.6\n"
            "markupsafe==3.0.2\ngunicorn==23.0.0\ndemo==1.0\n"
        )
    spec = {
        "name": "demo",
        "source": source,
        "requirements": str(requirements) if requirements else None,
        "kind": "wsgi",
        "entry": "demo:app",
        "domains": ["demo.test"],
        "static_dir": "static",
    }
    spec.update(overrides)
    return normalize_apps([spec], project_dir=tmp_path, check_paths=False)[0]


def build(app, dest, **kwargs):
    kwargs.setdefault("cache_dir", dest.parent / "cache")
    kwargs.setdefault("uv_version", "0.9.9")
    return wheelhouse.build_wheelhouse(app, dest, **kwargs)


def wheels_in(house):
    return sorted(p.name for p in house.glob("*.whl"))


# --- a whole build ----------------------------------------------------------------


def test_a_build_holds_the_app_its_pinned_closure_uv_static_lock_and_manifest(tools, tmp_path):
    app = make_app(tmp_path)
    house = tmp_path / "house"
    manifest = build(app, house)
    assert wheels_in(house) == [
        "demo-1.0-py3-none-any.whl",
        "flask-3.1.0-py3-none-any.whl",
        "gunicorn-23.0.0-py3-none-any.whl",
        "jinja2-3.1.6-py3-none-any.whl",
        f"markupsafe-3.0.2-cp311-cp311-{X86}.whl",
        "werkzeug-3.1.3-py3-none-any.whl",
    ]
    assert [p.name for p in (house / "uv").iterdir()] == [f"uv-0.9.9-py3-none-{X86}.whl"]
    assert (house / "static" / "css" / "app.css").read_text() == "body {}\n"
    assert (house / "requirements.lock").read_text() == (
        "demo==1.0\nflask==3.1.0\ngunicorn==23.0.0\njinja2==3.1.6\nmarkupsafe==3.0.2\nwerkzeug==3.1.3\n"
    )
    on_disk = {str(p.relative_to(house)) for p in house.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"MANIFEST.json"}
    for rel, digest in manifest["files"].items():
        assert digest == hashlib.sha256((house / rel).read_bytes()).hexdigest()
    assert {k: v for k, v in manifest.items() if k not in ("files", "content_hash")} == {
        "format": 1,
        "app": "demo",
        "project": "demo",
        "version": "1.0",
        "app_wheel": "demo-1.0-py3-none-any.whl",
        "uv_wheel": f"uv/uv-0.9.9-py3-none-{X86}.whl",
        "target": {"python": "3.11.2", "arch": "x86_64", "glibc": "2.36"},
        "lock": "requirements.lock",
        "static": "static",
        "unpinned": [],
    }
    assert manifest["content_hash"].startswith("sha256:") and len(manifest["content_hash"]) == 7 + 64
    assert (house / "MANIFEST.json").read_text() == json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    assert wheelhouse.read_manifest(house) == manifest
    assert wheelhouse.content_hash(house) == manifest["content_hash"]
    # Nothing is left beside the wheelhouse but the cache: the work directory is gone.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "demo", "house", "index", "requirements.txt"]


def test_the_build_resolves_for_the_hosts_python_and_platform(tools, tmp_path):
    build(make_app(tmp_path), tmp_path / "house", target=DEBIAN_13_ARM)
    (compile_args,) = tools.args_of("compile")
    assert compile_args[:8] == [
        UV,
        "--offline",
        "pip",
        "compile",
        "--quiet",
        "--no-header",
        "--no-annotate",
        "--only-binary",
    ]
    assert compile_args[8:-1] == [":all:", "--python-version", "3.13.5", "--python-platform", "aarch64-manylinux_2_40"]
    # The input: the app's own requirements, then the pinned file without the app itself.
    assert Path(compile_args[-1]).name == "resolve.in"
    # The best of the five markupsafe wheels for these hosts, as pip would pick it.
    assert f"markupsafe-3.0.2-cp313-cp313-{ARM}.whl" in wheels_in(tmp_path / "house")


def test_the_resolver_gets_the_apps_requirements_and_the_pins_but_not_the_app(tools, tmp_path, monkeypatch):
    seen = []
    real = tools.compile
    monkeypatch.setattr(tools, "compile", lambda args, env: seen.append(Path(args[-1]).read_text()) or real(args, env))
    build(make_app(tmp_path), tmp_path / "house")
    assert seen == ["flask>=3\nflask==3.1.0\nwerkzeug==3.1.3\njinja2==3.1.6\nmarkupsafe==3.0.2\ngunicorn==23.0.0\n"]


def test_without_requirements_anywhere_nothing_is_resolved(tools, tmp_path):
    project = make_project(tmp_path, dependencies=())
    app = make_app(tmp_path, source={"path": str(project)}, requirements=None, kind="asgi", server="uvicorn")
    with pytest.raises(PyfleetError, match=r"^app demo: the wheelhouse lacks uvicorn, which server uvicorn"):
        build(app, tmp_path / "house")
    assert "compile" not in tools.kinds() and "resolve" not in tools.kinds()


def test_only_the_missing_wheels_are_downloaded_and_a_second_build_downloads_nothing(tools, tmp_path):
    app = make_app(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy2(tools.index / "flask-3.1.0-py3-none-any.whl", cache)
    first = build(app, tmp_path / "one", cache_dir=cache)
    downloads = tools.args_of("download")
    assert len(downloads) == 2  # the dependencies at once, then uv
    assert [a for a in downloads[0] if "==" in a] == [
        "gunicorn==23.0.0",
        "jinja2==3.1.6",
        "markupsafe==3.0.2",
        "werkzeug==3.1.3",
    ]
    assert [a for a in downloads[1] if "==" in a] == ["uv==0.9.9"]
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary download directory left
    second = build(app, tmp_path / "two", cache_dir=cache)
    assert len(tools.args_of("download")) == 2
    assert second == first  # the same inputs give the same wheelhouse, byte for byte


def test_downloads_ask_pip_for_the_hosts_wheels_without_dependencies(tools, tmp_path):
    build(make_app(tmp_path), tmp_path / "house", target=Target("3.12.1", "aarch64", "2.17"))
    args = tools.args_of("download")[0]
    assert args[:8] == [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", args[7]]
    assert Path(args[7]).parent == tmp_path / "cache" and Path(args[7]).name.startswith(".download-")
    options = args[8 : args.index("flask==3.1.0")]
    assert options == [
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        "3.12.1",
        "--abi",
        "cp312",
        "--abi",
        "abi3",
        "--abi",
        "none",
        "--platform",
        "manylinux_2_17_aarch64",
        "--platform",
        "manylinux2014_aarch64",
    ]


def test_the_default_cache_is_the_repos(tools, tmp_path, monkeypatch):
    monkeypatch.setattr(wheelhouse, "DEFAULT_CACHE", tmp_path / "default-cache")
    build(make_app(tmp_path), tmp_path / "house", cache_dir=None)
    assert (tmp_path / "default-cache" / "gunicorn-23.0.0-py3-none-any.whl").is_file()


def test_the_shipped_uv_is_the_controllers_by_default(tools, tmp_path, monkeypatch):
    monkeypatch.setattr(wheelhouse, "controller_uv_version", lambda: "0.8.0")
    manifest = build(make_app(tmp_path), tmp_path / "house", uv_version=None)
    assert manifest["uv_wheel"] == f"uv/uv-0.8.0-py3-none-{X86}.whl"
    manifest = build(make_app(tmp_path / "b"), tmp_path / "b" / "house", uv_version="0.9.9")
    assert manifest["uv_wheel"] == f"uv/uv-0.9.9-py3-none-{X86}.whl"


def test_a_bad_target_is_refused_before_anything_runs(tools, tmp_path):
    with pytest.raises(PyfleetError, match=r"^target arch 'sparc' is not supported"):
        build(make_app(tmp_path), tmp_path / "house", target=Target("3.11.2", "sparc", "2.36"))
    assert tools.calls == []


def test_unpinned_dependencies_are_listed_in_the_manifest(tools, tmp_path):
    requirements = tmp_path / "partial.txt"
    requirements.write_text("flask==3.1.0\ngunicorn==23.0.0\n")
    manifest = build(make_app(tmp_path, requirements=requirements), tmp_path / "house")
    assert manifest["unpinned"] == ["jinja2", "markupsafe", "werkzeug"]
    project = make_project(tmp_path / "b", dependencies=("flask>=3", "gunicorn"))
    without = build(make_app(tmp_path, source={"path": str(project)}, requirements=None), tmp_path / "b" / "h")
    assert without["unpinned"] == []  # no requirements file: nothing was meant to be pinned
    assert without["static"] == "static"


def test_the_same_code_built_twice_gives_the_same_hash_and_an_edit_another(tools, tmp_path):
    app = make_app(tmp_path)
    first = build(app, tmp_path / "one")
    second = build(app, tmp_path / "two")
    assert second["content_hash"] == first["content_hash"]
    (tmp_path / "demo" / "demo" / "__init__.py").write_text("app = None\n")
    third = build(app, tmp_path / "three")
    assert third["content_hash"] != first["content_hash"]
    (build_args,) = {tuple(a) for a in tools.args_of("build")[:1]}
    assert list(build_args[:5]) == [UV, "--offline", "build", "--quiet", "--wheel"]
    assert next(env for kind, _, env in tools.calls if kind == "build")["SOURCE_DATE_EPOCH"] == "315532800"


def test_the_content_hash_covers_the_target_and_every_file_but_not_zip_details_of_the_app_wheel(tools, tmp_path):
    house = tmp_path / "house"
    manifest = build(make_app(tmp_path), house)
    base = manifest["content_hash"]
    # The app's wheel counts by its RECORD: the same files zipped again (other timestamps) hash the same.
    app_wheel = house / manifest["app_wheel"]
    with zipfile.ZipFile(app_wheel) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(app_wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in reversed(list(members.items())):
            zf.writestr(zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0)), data)
    assert wheelhouse.content_hash(house) == base
    # The RECORD's own line does not count either (it holds no hash).
    record = next(n for n in members if n.endswith("RECORD"))
    with zipfile.ZipFile(app_wheel, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data.replace(b"RECORD,,", b"RECORD,,0") if member == record else data)
    assert wheelhouse.content_hash(house) == base
    # Every other file counts by its bytes, static files and the lock included.
    for rel in ("static/css/app.css", "requirements.lock", "jinja2-3.1.6-py3-none-any.whl"):
        saved = (house / rel).read_bytes()
        (house / rel).write_bytes(saved + b"\n")
        assert wheelhouse.content_hash(house) != base, rel
        (house / rel).write_bytes(saved)
    assert wheelhouse.content_hash(house) == base
    (house / "static" / "new.css").write_text("")
    assert wheelhouse.content_hash(house) != base
    (house / "static" / "new.css").unlink()
    # A file's name counts as well as its bytes.
    (house / "static" / "css" / "app.css").rename(house / "static" / "css" / "other.css")
    assert wheelhouse.content_hash(house) != base
    (house / "static" / "css" / "other.css").rename(house / "static" / "css" / "app.css")
    # The manifest itself does not count (it holds the hash).
    (house / "MANIFEST.json").write_text(json.dumps(dict(manifest, version="x")))
    assert wheelhouse.content_hash(house) == base
    # The same files for another target are another wheelhouse.
    for target in (
        {"python": "3.11.3", "arch": "x86_64", "glibc": "2.36"},
        {"python": "3.11.2", "arch": "aarch64", "glibc": "2.36"},
    ):
        (house / "MANIFEST.json").write_text(json.dumps(dict(manifest, target=target)))
        assert wheelhouse.content_hash(house) != base


def test_the_content_hash_is_a_digest_of_names_and_file_digests(tools, tmp_path):
    house = tmp_path / "house"
    manifest = build(make_app(tmp_path), house)
    lines = ["pyfleet-wheelhouse 1 cp311-x86_64-glibc2.36 3.11.2\n"]
    for rel, digest in sorted(manifest["files"].items()):
        if rel == manifest["app_wheel"]:
            with zipfile.ZipFile(house / rel) as zf:
                record = zf.read("demo-1.0.dist-info/RECORD").decode().splitlines()
            digest = hashlib.sha256("\n".join(sorted(r for r in record if "RECORD" not in r)).encode()).hexdigest()
        lines.append(f"{rel} {digest}\n")
    assert manifest["content_hash"] == "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def test_a_failed_build_leaves_the_old_wheelhouse_and_no_work_directory(tools, tmp_path):
    app = make_app(tmp_path)
    house = tmp_path / "house"
    first = build(app, house)
    tools.fail["compile"] = (
        1,
        "  \u00d7 No solution found\n  ╰─▶ Because flask==9 was not found, we can conclude.\nhint: try\n",
    )
    with pytest.raises(PyfleetError) as caught:
        build(app, house)
    assert str(caught.value) == (
        "app demo: resolving its requirements for Python 3.11.2 on x86_64 failed: "
        "Because flask==9 was not found, we can conclude; "
        "fix the requirement (name and version must exist with a wheel for the hosts) and re-pin"
    )
    assert wheelhouse.read_manifest(house) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "demo", "house", "index", "requirements.txt"]


def test_a_rebuild_replaces_the_whole_directory(tools, tmp_path):
    house = tmp_path / "house"
    house.mkdir()
    (house / "stale.whl").write_text("old")
    build(make_app(tmp_path), house)
    assert not (house / "stale.whl").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_missing_sources_and_requirements_files_are_one_line_errors(tools, tmp_path):
    app = make_app(tmp_path, source={"path": str(tmp_path / "nowhere")})
    with pytest.raises(PyfleetError) as caught:
        build(app, tmp_path / "house")
    assert str(caught.value) == (
        f"app demo: source path {tmp_path / 'nowhere'} does not exist; fix pyfleet_apps source.path"
    )
    app = make_app(tmp_path, requirements=tmp_path / "none.txt")
    with pytest.raises(PyfleetError) as caught:
        build(app, tmp_path / "house")
    assert str(caught.value) == (
        f"app demo: requirements file {tmp_path / 'none.txt'} does not exist; fix pyfleet_apps requirements"
    )


# --- the app's wheel: path, sdist, wheel or requirement ------------------------------


def test_a_wheel_source_is_copied_and_its_static_dir_taken_from_inside_it(tools, tmp_path):
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = write_wheel(
        dist,
        "demo",
        "2.0",
        {"demo/__init__.py": "", "demo/static/a.css": "a", "demo/static/img/b.png": b"\x89PNG", "demo/staticx.py": ""},
        requires=["flask>=3"],
    )
    app = make_app(tmp_path, source={"wheel": str(wheel)}, static_dir="demo/static/")
    house = tmp_path / "house"
    manifest = build(app, house)
    assert (house / wheel.name).read_bytes() == wheel.read_bytes()
    assert sorted(str(p.relative_to(house / "static")) for p in (house / "static").rglob("*") if p.is_file()) == [
        "a.css",
        "img/b.png",
    ]
    assert (house / "static" / "img" / "b.png").read_bytes() == b"\x89PNG"
    assert manifest["version"] == "2.0" and manifest["static"] == "static"
    assert "build" not in tools.kinds()


def test_a_wheel_source_without_the_static_dir_or_static_dir_null(tools, tmp_path):
    wheel = write_wheel(tmp_path, "demo", "2.0", {"demo/__init__.py": ""}, requires=["flask>=3"])
    app = make_app(tmp_path, source={"wheel": str(wheel)}, static_dir="demo/static")
    with pytest.raises(PyfleetError) as caught:
        build(app, tmp_path / "house")
    assert str(caught.value) == (
        "app demo: static_dir demo/static is not in demo-2.0-py3-none-any.whl; "
        "fix static_dir (relative to the project, or to site-packages for a wheel) or set it to null"
    )
    manifest = build(make_app(tmp_path, source={"wheel": str(wheel)}, static_dir=None), tmp_path / "house")
    assert manifest["static"] is None and not (tmp_path / "house" / "static").exists()


def test_a_path_source_without_its_static_dir(tools, tmp_path):
    project = make_project(tmp_path, static=False)
    app = make_app(tmp_path, source={"path": str(project)})
    with pytest.raises(PyfleetError) as caught:
        build(app, tmp_path / "house")
    assert str(caught.value) == (
        f"app demo: static_dir {project / 'static'} is not a directory; "
        "fix static_dir (relative to the project, or to site-packages for a wheel) or set it to null"
    )
    (project / "static").write_text("a file")
    with pytest.raises(PyfleetError, match="is not a directory"):
        build(app, tmp_path / "house")


def test_a_wheel_source_with_a_bad_file_name(tools, tmp_path):
    bad = tmp_path / "demo.whl"
    shutil.copy2(write_wheel(tmp_path, "demo", "2.0", {}), bad)
    with pytest.raises(PyfleetError) as caught:
        build(make_app(tmp_path, source={"wheel": str(bad)}), tmp_path / "house")
    assert str(caught.value).startswith("app demo: demo.whl is not a valid wheel file name (")
    assert str(caught.value).endswith("); rebuild the wheel")


def test_an_sdist_source_is_built(tools, tmp_path):
    project = make_project(tmp_path / "src", version="1.5")
    sdist = tmp_path / "demo-1.5.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(project, arcname="demo-1.5")
    manifest = build(make_app(tmp_path, source={"wheel": str(sdist)}, static_dir="demo/assets"), tmp_path / "house")
    assert manifest["app_wheel"] == "demo-1.5-py3-none-any.whl"
    assert (tmp_path / "house" / "static" / "logo.svg").read_text() == "<svg/>"
    assert tools.args_of("build")[0][-1] == str(sdist)


def test_a_requirement_source_is_fetched(tools, tmp_path):
    write_wheel(tools.index, "demo", "3.0", {"demo/__init__.py": "", "demo/static/x.js": "x"}, requires=["flask>=3"])
    app = make_app(tmp_path, source={"requirement": "Demo==3.0"}, static_dir="demo/static")
    manifest = build(app, tmp_path / "house")
    assert manifest["app_wheel"] == "demo-3.0-py3-none-any.whl" and manifest["project"] == "demo"
    assert (tmp_path / "house" / "static" / "x.js").read_text() == "x"
    assert "build" not in tools.kinds()
    assert (tmp_path / "house" / "requirements.lock").read_text().startswith("demo==3.0\nflask==3.1.0\n")


def test_a_build_that_fails_or_gives_no_single_wheel(tools, tmp_path, monkeypatch):
    app = make_app(tmp_path)
    tools.fail["build"] = (1, "Traceback (most recent call last):\n  ...\nValueError: bad pyproject\n\n")
    with pytest.raises(PyfleetError) as caught:
        build(app, tmp_path / "house")
    project = tmp_path / "demo"
    assert str(caught.value) == (
        f"app demo: building a wheel from {project} failed: ValueError: bad pyproject; "
        "fix the project so that `uv build --wheel` works there"
    )
    del tools.fail["build"]
    monkeypatch.setattr(tools, "build", lambda args, env: None)
    with pytest.raises(PyfleetError) as caught:
        build(app, tmp_path / "house")
    assert str(caught.value) == (
        f"app demo: building a wheel from {project} gave 0 wheels, not 1; build one project per app"
    )

    def two(args, env):
        out = Path(args[args.index("--out-dir") + 1])
        write_wheel(out, "demo", "1.0")
        write_wheel(out, "other", "1.0")

    monkeypatch.setattr(tools, "build", two)
    with pytest.raises(PyfleetError, match=r"gave 2 wheels, not 1; build one project per app$"):
        build(app, tmp_path / "house")


def test_an_offline_failure_goes_online_once(tools, tmp_path):
    tools.offline_fails = True
    build(make_app(tmp_path), tmp_path / "house")
    builds = tools.args_of("build")
    assert [("--offline" in a) for a in builds] == [True, False]
    assert builds[1][1:] == [a for a in builds[0][1:] if a != "--offline"]
    compiles = tools.args_of("compile")
    assert [("--offline" in a) for a in compiles] == [True, False]


# --- without uv: pip ----------------------------------------------------------------


def test_without_uv_pip_builds_and_resolves_for_the_hosts_markers(tools, tmp_path, monkeypatch):
    monkeypatch.setattr(wheelhouse, "find_uv", lambda: None)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "flask==3.1.0\nwerkzeug==3.1.3\njinja2==3.1.6\nmarkupsafe==3.0.2\ngunicorn==23.0.0\n"
        "async-timeout==5.0.1 ; python_full_version < '3.11.3'\n"
        "gunicorn==23.0.0 ; sys_platform == 'win32'\n"
        "flask==3.1.0 ; extra == 'web'\n"
    )
    house = tmp_path / "house"
    manifest = build(make_app(tmp_path, requirements=requirements), house)
    # Debian 12's 3.11.2 needs async-timeout, whatever Python the controller runs.
    assert "async-timeout==5.0.1\n" in (house / "requirements.lock").read_text()
    (build_args,) = tools.args_of("build")
    assert build_args == [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--wheel-dir",
        build_args[7],
        str(tmp_path / "demo"),
    ]
    assert next(env for kind, _, env in tools.calls if kind == "build")["SOURCE_DATE_EPOCH"] == "315532800"
    (resolve_args,) = tools.args_of("resolve")
    infile = Path(resolve_args[resolve_args.index("-r") + 1])
    assert resolve_args[:6] == [sys.executable, "-m", "pip", "download", "--quiet", "--dest"]
    assert resolve_args[7:-2] == wheelhouse._pip_target_args(DEBIAN_12)
    assert resolve_args[-2:] == ["-r", str(infile)]
    assert manifest["unpinned"] == []
    # For 3.11.3 hosts the marker is false: not even asked for.
    other = build(make_app(tmp_path / "b", requirements=requirements), tmp_path / "b" / "h", target=Target("3.11.3"))
    assert "async-timeout" not in (tmp_path / "b" / "h" / "requirements.lock").read_text()
    assert other["target"]["python"] == "3.11.3"


def test_pip_gets_the_requirements_with_the_hosts_markers_decided(tools, tmp_path, monkeypatch):
    monkeypatch.setattr(wheelhouse, "find_uv", lambda: None)
    seen = []

    def spy(args, env):
        seen.append(Path(args[args.index("-r") + 1]).read_text())
        raise LookupError("stop here")

    monkeypatch.setattr(tools, "resolve", spy)
    lines = ["flask>=3", "werkzeug==3.1.3; python_version >= '3.11'", "gunicorn; sys_platform == 'win32'", "not a req!"]
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(LookupError):
        wheelhouse._resolve_pip("demo", lines, DEBIAN_12, work)
    assert seen == ["flask>=3\nwerkzeug==3.1.3\nnot a req!\n"]


def test_a_failed_pip_resolution_is_one_line(tools, tmp_path, monkeypatch):
    monkeypatch.setattr(wheelhouse, "find_uv", lambda: None)
    tools.fail["resolve"] = (1, "ERROR: No matching distribution found for flask==9\n")
    with pytest.raises(PyfleetError) as caught:
        build(make_app(tmp_path), tmp_path / "house", target=DEBIAN_13_ARM)
    assert str(caught.value) == (
        "app demo: resolving its requirements for Python 3.13.5 on aarch64 failed: "
        "No matching distribution found for flask==9; "
        "fix the requirement (name and version must exist with a wheel for the hosts) and re-pin"
    )


# --- fetching ---------------------------------------------------------------------


def test_a_pin_with_no_wheel_for_the_hosts_is_named(tools, tmp_path):
    write_wheel(tools.index, "fastlib", "1.0", tag=f"cp311-cp311-{X86}")
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(PyfleetError) as caught:
        wheelhouse._fetch("demo", {"fastlib": "1.0", "gunicorn": "23.0.0", "nowhere": "2.0"}, DEBIAN_13_ARM, cache)
    assert str(caught.value) == (
        "app demo: no wheel of fastlib==1.0, nowhere==2.0 for Python 3.13 on aarch64 glibc 2.41; "
        "pin a version that ships one"
    )
    found = wheelhouse._fetch("demo", {"fastlib": "1.0", "gunicorn": "23.0.0"}, DEBIAN_12, cache)
    assert {p: path.name for p, path in found.items()} == {
        "fastlib": f"fastlib-1.0-cp311-cp311-{X86}.whl",
        "gunicorn": "gunicorn-23.0.0-py3-none-any.whl",
    }
    assert all(path.parent == cache for path in found.values())


def test_a_failed_download_is_one_line(tools, tmp_path):
    tools.fail["download"] = (1, "ERROR: Could not find a version\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(PyfleetError) as caught:
        wheelhouse._fetch("demo", {"gunicorn": "23.0.0", "flask": "3.1.0"}, DEBIAN_13_ARM, cache)
    assert str(caught.value) == (
        "app demo: downloading flask==3.1.0, gunicorn==23.0.0 for Python 3.13 on aarch64 failed: "
        "Could not find a version; "
        "check the pins exist with a wheel for the hosts, and that the package index is reachable"
    )


def test_the_cache_matches_names_and_versions_as_packaging_normalises_them(tmp_path):
    for name in (
        "Zope.Interface-7.0-py3-none-any.whl",
        "zope_interface-7.0.0-py3-none-any.whl",
        "zope_interfaces-7.0-py3-none-any.whl",
        "zope-7.0-py3-none-any.whl",
        "zope_interface-7.0-not-a-wheel.whl",
        "zope_interface-7.0-cp311-cp311-win_amd64.whl",
    ):
        (tmp_path / name).write_text("")
    best = wheelhouse._cached_wheel(tmp_path, "zope-interface", "7.0", DEBIAN_12)
    assert best.name in ("Zope.Interface-7.0-py3-none-any.whl", "zope_interface-7.0.0-py3-none-any.whl")
    assert wheelhouse._cached_wheel(tmp_path, "zope-interface", "7.0.1", DEBIAN_12) is None
    assert wheelhouse._cached_wheel(tmp_path, "zope", "7.0", DEBIAN_12).name == "zope-7.0-py3-none-any.whl"


def test_the_cache_prefers_the_most_specific_tag_whatever_the_order(tmp_path):
    names = [f"lib-1.0-{t}.whl" for t in ("py3-none-any", f"cp311-abi3-{X86}", "cp311-cp311-manylinux_2_28_x86_64")]
    for name in names:
        (tmp_path / name).write_text("")
    assert wheelhouse._cached_wheel(tmp_path, "lib", "1.0", DEBIAN_12).name == names[2]
    (tmp_path / names[2]).unlink()
    assert wheelhouse._cached_wheel(tmp_path, "lib", "1.0", DEBIAN_12).name == names[1]
    (tmp_path / names[1]).unlink()
    assert wheelhouse._cached_wheel(tmp_path, "lib", "1.0", DEBIAN_12).name == names[0]


# --- checks of the whole set --------------------------------------------------------


def _closure_wheels(tmp_path, **requires):
    wheels = {}
    for spec, reqs in requires.items():
        name, _, version = spec.partition("__")
        path = write_wheel(tmp_path, name, version.replace("_", "."), requires=reqs)
        wheels[canonicalize_name(name)] = path
    return wheels


def test_the_closure_check_names_a_missing_dependency_for_the_hosts_python(tmp_path):
    wheels = _closure_wheels(
        tmp_path,
        app__1=["redis>=5", "colorama; sys_platform == 'win32'"],
        redis__5_0=["async-timeout>=4; python_full_version < '3.11.3'"],
    )
    wheelhouse._check_closure("demo", "app", wheels, Target("3.11.3"), None)
    with pytest.raises(PyfleetError) as caught:
        wheelhouse._check_closure("demo", "app", wheels, DEBIAN_12, None)
    assert str(caught.value) == (
        "app demo: redis needs async-timeout on Python 3.11.2, which the wheelhouse lacks; "
        "add async-timeout==<version> to the requirements file and re-pin"
    )


def test_the_closure_check_names_a_dependency_out_of_range(tmp_path):
    wheels = _closure_wheels(tmp_path, app__1=["Click>=8.1,<9"], click__9_0rc1=[])
    with pytest.raises(PyfleetError) as caught:
        wheelhouse._check_closure("demo", "app", wheels, DEBIAN_12, None)
    assert str(caught.value) == (
        "app demo: app needs Click<9,>=8.1, but click==9.0rc1 is pinned; re-pin the requirements file (uv pip compile)"
    )
    ok = _closure_wheels(tmp_path, app__2=["click>=9.0rc1"], click__9_0rc1=[])
    wheelhouse._check_closure("demo", "app", ok, DEBIAN_12, None)  # a pinned pre-release is in range


def test_the_closure_check_follows_extras_from_the_app_and_the_requirements_file(tmp_path):
    wheels = _closure_wheels(
        tmp_path,
        app__1=["celery[redis]>=5"],
        celery__5_0=["kombu>=5", "redis>=4; extra == 'redis'", "pytest; extra == 'test'"],
        kombu__5_0=["vine; extra == 'vine'"],
        redis__4_0=[],
    )
    wheelhouse._check_closure("demo", "app", wheels, DEBIAN_12, None)
    del wheels["redis"]
    with pytest.raises(PyfleetError, match=r"^app demo: celery needs redis on Python 3.11.2"):
        wheelhouse._check_closure("demo", "app", wheels, DEBIAN_12, None)
    # A pinned line's extras count too, even when the app asks for none.
    req_file = tmp_path / "requirements.txt"
    req_file.write_text("kombu[vine]==5.0 \\\n    --hash=sha256:abc\nnot-in-the-set==1.0\n")
    plain = _closure_wheels(tmp_path, app__3=[], kombu__5_0=["vine; extra == 'vine'"])
    wheelhouse._check_closure("demo", "app", plain, DEBIAN_12, None)
    with pytest.raises(PyfleetError, match=r"^app demo: kombu needs vine on Python 3.11.2"):
        wheelhouse._check_closure("demo", "app", plain, DEBIAN_12, str(req_file))


def test_the_closure_check_visits_each_wheel_once_per_extras(tmp_path, monkeypatch):
    wheels = _closure_wheels(tmp_path, app__1=["a", "b"], a__1=["c"], b__1=["c"], c__1=["a"])
    reads = []
    real = wheelhouse._requires
    monkeypatch.setattr(wheelhouse, "_requires", lambda w: reads.append(Path(w).name) or real(w))
    wheelhouse._check_closure("demo", "app", wheels, DEBIAN_12, None)
    assert sorted(reads) == sorted(p.name for p in wheels.values())


def test_the_server_packages_must_be_in_the_set(tmp_path):
    app = make_app(tmp_path, requirements=None, kind="asgi", server="gunicorn")
    with pytest.raises(PyfleetError) as caught:
        wheelhouse._check_server_packages(app, {"demo": None, "uvicorn": None})
    assert str(caught.value) == (
        "app demo: the wheelhouse lacks gunicorn, uvicorn-worker, which server gunicorn needs for asgi apps; "
        "add gunicorn==<version>, uvicorn-worker==<version> to its requirements"
    )
    wheelhouse._check_server_packages(app, {"gunicorn": None, "uvicorn-worker": None})


# --- reuse ------------------------------------------------------------------------


def test_build_or_reuse_rebuilds_exactly_when_an_input_changed(tools, tmp_path, monkeypatch):
    app = make_app(tmp_path)
    house = tmp_path / "house"
    monkeypatch.setattr(wheelhouse, "controller_uv_version", lambda: "0.9.9")
    builds = []
    real = wheelhouse.build_wheelhouse

    def counted(app, dest, target, cache_dir):
        builds.append(target)
        return real(app, dest, target=target, cache_dir=cache_dir, uv_version="0.9.9")

    monkeypatch.setattr(wheelhouse, "build_wheelhouse", counted)
    cache = tmp_path / "cache"
    first = wheelhouse.build_or_reuse(app, house, DEBIAN_12, revision="r1", cache_dir=cache)
    stamp = tmp_path / "house.inputs"
    assert stamp.read_text() == wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9", "r1")
    assert wheelhouse.build_or_reuse(app, house, DEBIAN_12, revision="r1", cache_dir=cache) == first
    assert len(builds) == 1
    wheelhouse.build_or_reuse(app, house, DEBIAN_13_ARM, revision="r1", cache_dir=cache)
    assert builds == [DEBIAN_12, DEBIAN_13_ARM]
    # A lost manifest or a missing stamp rebuilds.
    (house / "MANIFEST.json").unlink()
    wheelhouse.build_or_reuse(app, house, DEBIAN_13_ARM, revision="r1", cache_dir=cache)
    stamp.unlink()
    wheelhouse.build_or_reuse(app, house, DEBIAN_13_ARM, revision="r1", cache_dir=cache)
    assert len(builds) == 4
    # The controller's uv is shipped: another uv is another wheelhouse.
    monkeypatch.setattr(wheelhouse, "controller_uv_version", lambda: "0.8.0")
    wheelhouse.build_or_reuse(app, house, DEBIAN_13_ARM, revision="r1", cache_dir=cache)
    assert len(builds) == 5


def test_a_failed_rebuild_leaves_no_stamp(tools, tmp_path, monkeypatch):
    app = make_app(tmp_path)
    house = tmp_path / "house"
    monkeypatch.setattr(wheelhouse, "controller_uv_version", lambda: "0.9.9")
    wheelhouse.build_or_reuse(app, house, DEBIAN_12, revision="r1", cache_dir=tmp_path / "cache")
    tools.fail["compile"] = (1, "error: boom\n")
    with pytest.raises(PyfleetError):
        wheelhouse.build_or_reuse(app, house, DEBIAN_12, revision="r2", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "house.inputs").exists()
    del tools.fail["compile"]
    # The old wheelhouse is still there, but r1 is built again: no stamp says it matches.
    before = len(tools.args_of("compile"))
    wheelhouse.build_or_reuse(app, house, DEBIAN_12, revision="r1", cache_dir=tmp_path / "cache")
    assert len(tools.args_of("compile")) == before + 1


def _fingerprint_app(tmp_path):
    project = make_project(tmp_path)
    return make_app(tmp_path, source={"path": str(project)}), project


def test_the_fingerprint_changes_with_each_input(tmp_path):
    app, project = _fingerprint_app(tmp_path)
    base = wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9", "r1")
    assert base == wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9", "r1")
    assert len(base) == 64 and int(base, 16) >= 0
    others = [
        wheelhouse.input_fingerprint(app, DEBIAN_13_ARM, "0.9.9", "r1"),
        wheelhouse.input_fingerprint(app, Target(glibc="2.37"), "0.9.9", "r1"),
        wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.8", "r1"),
        wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9", "r2"),
        wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9"),
        wheelhouse.input_fingerprint(dict(app, static_dir="other"), DEBIAN_12, "0.9.9", "r1"),
        wheelhouse.input_fingerprint(dict(app, requirements=None), DEBIAN_12, "0.9.9", "r1"),
    ]
    assert len({base, *others}) == len(others) + 1
    # The requirements file's bytes count, not only its name.
    (tmp_path / "requirements.txt").write_text("flask==3.1.1\n")
    edited = wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9", "r1")
    assert edited not in (base, *others)
    # Every file of the project counts: an edit, a new file, a new name.
    (project / "demo" / "__init__.py").write_text("app = 1\n")
    again = wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9", "r1")
    assert again != edited
    (project / "demo" / "views.py").write_text("")
    third = wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9", "r1")
    assert third != again
    (project / "demo" / "views.py").rename(project / "demo" / "views2.py")
    assert wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9", "r1") != third


def test_the_fingerprint_sees_a_file_edited_within_the_same_second_with_the_same_size(tmp_path):
    app, project = _fingerprint_app(tmp_path)
    module = project / "demo" / "__init__.py"
    before = wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9")
    stat = module.stat()
    module.write_text("app = 2\n".ljust(stat.st_size))
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1000))
    assert wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9") != before


def test_the_fingerprint_leaves_out_caches_bytecode_and_build_output(tmp_path):
    app, project = _fingerprint_app(tmp_path)
    base = wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9")
    for rel in (
        ".git/HEAD",
        "demo/__pycache__/x.cpython-311.pyc",
        "demo/stray.pyc",
        ".pytest_cache/v",
        ".mypy_cache/x",
        ".ruff_cache/x",
        ".tox/x",
        ".nox/x",
        "demo.egg-info/PKG-INFO",
        "src/demo.egg-info/PKG-INFO",
        "build/lib/demo/__init__.py",
    ):
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text("x")
    assert wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9") == base
    # A package's own build/ directory is source, not setuptools' output.
    (project / "demo" / "build").mkdir()
    (project / "demo" / "build" / "steps.py").write_text("")
    assert wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9") != base


def test_the_fingerprint_of_wheel_and_requirement_sources(tmp_path):
    wheel = write_wheel(tmp_path, "demo", "1.0")
    app = make_app(tmp_path, source={"wheel": str(wheel)})
    base = wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9")
    os.utime(wheel, ns=(0, wheel.stat().st_mtime_ns + 10**9))
    touched = wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9")
    assert touched != base
    wheel.unlink()
    assert wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9") not in (base, touched)  # no error: the build says it
    pinned = make_app(tmp_path, source={"requirement": "demo==1.0"}, requirements=None)
    assert wheelhouse.input_fingerprint(pinned, DEBIAN_12, "0.9.9") != wheelhouse.input_fingerprint(
        make_app(tmp_path, source={"requirement": "demo==1.1"}, requirements=None), DEBIAN_12, "0.9.9"
    )


def test_the_tree_lists_relative_paths_sorted(tmp_path):
    for rel in ("b/z.py", "a.py", "b/a.py", "c.pyc"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    listed = wheelhouse._tree_stats(tmp_path)
    assert [rel for rel, _ in listed] == ["a.py", "b/a.py", "b/z.py"]
    assert [stat.st_size for _, stat in listed] == [4, 6, 6]
    assert [rel for rel, _ in wheelhouse._tree_stats(tmp_path / "a.py")] == ["a.py"]
    assert wheelhouse._tree_stats(tmp_path / "none") == []


def test_a_wheelhouse_with_unpinned_dependencies_is_built_again(tools, tmp_path, monkeypatch):
    requirements = tmp_path / "partial.txt"
    requirements.write_text("flask==3.1.0\ngunicorn==23.0.0\n")
    app = make_app(tmp_path, requirements=requirements)
    monkeypatch.setattr(wheelhouse, "controller_uv_version", lambda: "0.9.9")
    monkeypatch.setattr(wheelhouse, "DEFAULT_CACHE", tmp_path / "cache")
    wheelhouse.build_or_reuse(app, tmp_path / "house", DEBIAN_12)
    wheelhouse.build_or_reuse(app, tmp_path / "house", DEBIAN_12)
    assert len(tools.args_of("compile")) == 2


# --- manifests, hashes, identities --------------------------------------------------


def test_an_unreadable_manifest_is_one_line(tmp_path):
    with pytest.raises(PyfleetError) as caught:
        wheelhouse.read_manifest(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'MANIFEST.json'}: not a readable wheelhouse manifest (")
    assert str(caught.value).endswith("); rebuild the wheelhouse")
    (tmp_path / "MANIFEST.json").write_text("{not json")
    with pytest.raises(PyfleetError, match=r"not a readable wheelhouse manifest \(Expecting"):
        wheelhouse.read_manifest(tmp_path)
    (tmp_path / "MANIFEST.json").write_bytes(b"\xff\xfe")
    with pytest.raises(PyfleetError, match="not a readable wheelhouse manifest"):
        wheelhouse.read_manifest(str(tmp_path))


def test_sha256_of_a_file_larger_than_a_block(tmp_path):
    data = os.urandom((1 << 20) + 17)
    (tmp_path / "f").write_bytes(data)
    assert wheelhouse._sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    (tmp_path / "e").write_bytes(b"")
    assert wheelhouse._sha256(str(tmp_path / "e")) == hashlib.sha256(b"").hexdigest()


def test_wheel_identity_is_canonical(tmp_path):
    assert wheelhouse._wheel_identity("Zope.Interface-7.0.0-py3-none-any.whl") == ("zope-interface", "7.0.0")
    assert wheelhouse._wheel_identity(tmp_path / "x-1.0.post0-py3-none-any.whl") == ("x", "1.0.post0")
    with pytest.raises(PyfleetError) as caught:
        wheelhouse._wheel_identity("/d/x.whl")
    assert str(caught.value).startswith("x.whl is not a valid wheel file name (")


def test_requires_reads_the_top_level_metadata_and_skips_bad_lines(tmp_path):
    wheel = write_wheel(
        tmp_path,
        "demo",
        "1.0",
        {"demo/vendor/x.dist-info/METADATA": "Requires-Dist: hidden\n"},
        requires=["a>=1", "!!"],
    )
    assert [str(r) for r in wheelhouse._requires(wheel)] == ["a>=1"]
    bare = tmp_path / "bare-1.0-py3-none-any.whl"
    with zipfile.ZipFile(bare, "w") as zf:
        zf.writestr("bare/__init__.py", "")
        zf.writestr("bare/x.dist-info/METADATA", "Requires-Dist: a\n")
    with pytest.raises(PyfleetError) as caught:
        wheelhouse._requires(bare)
    assert str(caught.value) == "bare-1.0-py3-none-any.whl has no METADATA; it is not a valid wheel, rebuild it"
    assert wheelhouse._requires(write_wheel(tmp_path, "none", "1.0")) == []


def test_parse_pins_reads_uv_output():
    text = "# via x\nFlask==3.1.0\ncelery[redis]==5.4 ; python_version >= '3.8'\n  h11==0.14.0  \\\n  --hash=sha256:x\n-e ./local\nnoversion\n"
    assert wheelhouse._parse_pins(text) == {"flask": "3.1.0", "celery": "5.4", "h11": "0.14.0"}


def test_pinned_names(tmp_path):
    assert wheelhouse._pinned_names(None) is None
    assert wheelhouse._pinned_names(str(tmp_path / "none.txt")) is None
    (tmp_path / "r.txt").write_text("Flask==3.1 \\\n  --hash=sha256:x\n# c\n--index-url x\nzope.interface==7\n")
    assert wheelhouse._pinned_names(str(tmp_path / "r.txt")) == {"flask", "zope-interface"}


# --- tools ------------------------------------------------------------------------


def test_run_returns_stdout_and_passes_the_environment(monkeypatch):
    monkeypatch.setenv("PYFLEET_OUTER", "o")  # the caller's environment, with the extra variables on top
    code = "import os, sys; print(os.environ['PYFLEET_OUTER'] + os.environ['PYFLEET_T'] + sys.argv[1])"
    assert wheelhouse._run([sys.executable, "-c", code, 5], "w", "f", {"PYFLEET_T": "x"}) == "ox5\n"


def test_run_failures_are_one_line_with_the_last_line_and_fix(tmp_path):
    fail = "import sys; print('out'); sys.stderr.write('first\\nerror: the cause.\\n\\n'); sys.exit(3)"
    with pytest.raises(PyfleetError) as caught:
        wheelhouse._run([sys.executable, "-c", fail], "doing it", "fix it")
    assert str(caught.value) == "doing it failed: the cause; fix it"
    quiet = "import sys; print('  only stdout.  '); sys.exit(1)"
    with pytest.raises(PyfleetError) as caught:
        wheelhouse._run([sys.executable, "-c", quiet], "doing it", "fix it")
    assert str(caught.value) == "doing it failed: only stdout; fix it"
    with pytest.raises(PyfleetError) as caught:
        wheelhouse._run([tmp_path / "no-such-tool"], "doing it", "fix it")
    assert str(caught.value).startswith("doing it failed: [Errno 2] No such file or directory")
    assert str(caught.value).endswith("; fix it")


def test_offline_first(monkeypatch):
    calls = []

    def run(args, what, fix, env=None):
        calls.append((args, what, fix, env))
        if "--offline" in args and fail_offline:
            raise PyfleetError("offline")
        return "out"

    monkeypatch.setattr(wheelhouse, "_run", run)
    fail_offline = False
    assert wheelhouse._offline_first(["uv", "pip", "x"], "w", "f", {"A": "1"}) == "out"
    assert calls == [(["uv", "--offline", "pip", "x"], "w", "f", {"A": "1"})]
    fail_offline = True
    calls.clear()
    assert wheelhouse._offline_first(["uv", "pip", "x"], "w", "f", {"A": "1"}) == "out"
    assert calls[1] == (["uv", "pip", "x"], "w", "f", {"A": "1"})


def test_last_line():
    assert wheelhouse._last_line(None) == "no output"
    assert wheelhouse._last_line("\n  \nhint: x\n") == "no output"
    assert wheelhouse._last_line("a\n  \u00d7 b\n  ╰─▶ cause: Because x is unsatisfiable.\nhint: y\n") == (
        "Because x is unsatisfiable"
    )
    assert wheelhouse._last_line("ERROR: No matching distribution.") == "No matching distribution"
    assert wheelhouse._last_line("error:  spaced") == "spaced"
    assert wheelhouse._last_line("│ the error: stays") == "the error: stays"


def test_scrub():
    assert wheelhouse._scrub("token s3cr3t and 42 and s3cr3t", {"A": "s3cr3t", "B": 42, "C": "", "D": None}) == (
        "token *** and *** and ***"
    )


def test_replace_dir(tmp_path):
    new, dest = tmp_path / "new", tmp_path / "dest"
    new.mkdir()
    (new / "a").write_text("new")
    wheelhouse._replace_dir(new, dest)
    assert (dest / "a").read_text() == "new" and not new.exists()
    new.mkdir()
    (new / "b").write_text("newer")
    wheelhouse._replace_dir(new, dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]
    assert [p.name for p in dest.iterdir()] == ["b"]


def test_find_uv(monkeypatch, tmp_path):
    real = Path(wheelhouse.__file__)  # any existing file
    monkeypatch.setenv("PYFLEET_NO_UV", "1")
    assert wheelhouse.find_uv() is None
    monkeypatch.setenv("PYFLEET_NO_UV", "0")
    monkeypatch.setattr(wheelhouse.sys, "executable", str(tmp_path / "python"))
    (tmp_path / "uv").write_text("")
    assert wheelhouse.find_uv() == str(tmp_path / "uv")
    (tmp_path / "uv").unlink()
    (tmp_path / "uv").mkdir()  # not a file
    monkeypatch.setitem(sys.modules, "uv", SimpleNamespace(find_uv_bin=lambda: str(real)))
    assert wheelhouse.find_uv() == str(real)

    def missing():
        raise FileNotFoundError

    monkeypatch.setitem(sys.modules, "uv", SimpleNamespace(find_uv_bin=missing))
    monkeypatch.setattr(wheelhouse.shutil, "which", lambda name: f"/on/path/{name}")
    assert wheelhouse.find_uv() == "/on/path/uv"
    monkeypatch.setitem(sys.modules, "uv", None)  # import fails
    assert wheelhouse.find_uv() == "/on/path/uv"


def test_controller_uv_version(tools, monkeypatch):
    assert wheelhouse.controller_uv_version() == "0.9.9"
    assert tools.args_of("version") == [[UV, "--version"]]
    tools.version_output = "uv 0.10.12\n"
    assert wheelhouse.controller_uv_version() == "0.10.12"
    tools.version_output = "something else 1.2.3"
    monkeypatch.setattr(wheelhouse.metadata, "version", lambda name: {"uv": "0.7.1"}[name])
    assert wheelhouse.controller_uv_version() == "0.7.1"
    monkeypatch.setattr(wheelhouse, "find_uv", lambda: None)
    assert wheelhouse.controller_uv_version() == "0.7.1"

    def not_installed(name):
        raise wheelhouse.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(wheelhouse.metadata, "version", not_installed)
    assert wheelhouse.controller_uv_version() == wheelhouse.DEFAULT_UV_VERSION == "0.13.9"


# --- the entry check and build_venv ---------------------------------------------------


def _here():
    """The controller as a Target (same Python, machine and a glibc no newer than its own)."""
    return Target(f"{sys.version_info.major}.{sys.version_info.minor}.0", "x86_64", "2.17")


def test_the_controller_cannot_run_wheels_for_another_python_machine_or_newer_glibc(monkeypatch):
    monkeypatch.setattr(wheelhouse.platform, "machine", lambda: "AMD64")
    monkeypatch.setattr(wheelhouse.platform, "libc_ver", lambda: ("glibc", "2.36"))
    here = _here()
    assert wheelhouse._cannot_run_here(here) is None
    assert wheelhouse._cannot_run_here(Target(here.python, "x86_64", "2.36")) is None
    short = here.python_short
    assert wheelhouse._cannot_run_here(Target("3.9.2")) == f"the controller runs Python {short}, the hosts 3.9"
    assert wheelhouse._cannot_run_here(Target(here.python, "aarch64", "2.17")) == (
        "the controller is x86_64, the hosts aarch64"
    )
    assert wheelhouse._cannot_run_here(Target(here.python, "x86_64", "2.37")) == (
        "the controller's C library (glibc 2.36) is older than the hosts' glibc 2.37"
    )
    monkeypatch.setattr(wheelhouse.platform, "machine", lambda: "arm64")
    assert wheelhouse._cannot_run_here(Target(here.python, "aarch64", "2.17")) is None
    monkeypatch.setattr(wheelhouse.platform, "libc_ver", lambda: ("", ""))
    assert wheelhouse._cannot_run_here(Target(here.python, "aarch64", "2.17")) == (
        "the controller's C library (unknown ) is older than the hosts' glibc 2.17"
    )
    monkeypatch.setattr(wheelhouse.platform, "libc_ver", lambda: ("musl", "2.40"))
    assert "(musl 2.40)" in wheelhouse._cannot_run_here(Target(here.python, "aarch64", "2.17"))
    monkeypatch.setattr(wheelhouse.platform, "machine", lambda: "riscv64")
    assert wheelhouse._cannot_run_here(Target(here.python, "aarch64", "2.17")) == (
        "the controller is riscv64, the hosts aarch64"
    )


def _entry_house(tmp_path, target):
    house = tmp_path / "house"
    house.mkdir()
    (house / "MANIFEST.json").write_text(
        json.dumps({"target": {"python": target.python, "arch": target.arch, "glibc": target.glibc}})
    )
    return house


def test_the_entry_check_installs_the_wheelhouse_and_imports_the_entry(tools, tmp_path, monkeypatch):
    monkeypatch.setattr(wheelhouse, "_cannot_run_here", lambda target: None)
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    house = _entry_house(tmp_path, _here())
    app = make_app(tmp_path, entry="demo.web:make_app.factory", env={"MODE": "x"}, secrets={"TOKEN": "s3cr3t"})
    result = wheelhouse.check_entry_importable(house, app)
    assert result == wheelhouse.EntryCheck(
        True, f"entry demo.web:make_app.factory imports on Python {sys.version.split()[0]}"
    )
    venv_args, install_args, entry_args = (args for _, args, _ in tools.calls)
    venv = Path(venv_args[-1])
    assert venv_args == [UV, "venv", "--quiet", "--python", sys.executable, str(venv)]
    assert venv.name == "venv" and venv.parent.name.startswith("pyfleet-entry-")
    assert not venv.parent.exists()  # the throwaway venv is gone
    python = str(venv / "bin" / "python")
    assert install_args == [UV, "pip", "install", "--quiet", "--offline", "--no-index", "--python", python,
                            "--find-links", str(house.resolve()), "-r", str(house.resolve() / "requirements.lock")]  # fmt: skip
    assert entry_args[:3] == [python, "-I", "-c"]
    assert entry_args[4:] == ["demo.web", "make_app.factory"]
    env = tools.calls[2][2]
    assert env["MODE"] == "x" and env["TOKEN"] == "s3cr3t" and env["PYFLEET_RELEASE"] == "entry-check"
    assert "PYTHONPATH" not in env and env["PATH"] == os.environ["PATH"]


def test_the_import_script_walks_the_callables_dotted_path(tmp_path):
    (tmp_path / "mod.py").write_text("class A:\n    class B:\n        c = 1\n")
    code = wheelhouse._IMPORT_ENTRY
    ok = subprocess.run([sys.executable, "-c", code, "mod", "A.B.c"], cwd=tmp_path, capture_output=True, check=False)
    assert ok.returncode == 0
    bad = subprocess.run([sys.executable, "-c", code, "mod", "A.x"], cwd=tmp_path, capture_output=True, check=False)
    assert bad.returncode == 1 and b"AttributeError" in bad.stderr


def test_a_failed_import_is_one_line_without_secrets(tools, tmp_path, monkeypatch):
    monkeypatch.setattr(wheelhouse, "_cannot_run_here", lambda target: None)
    house = _entry_house(tmp_path, _here())
    app = make_app(tmp_path, secrets={"TOKEN": "s3cr3t"})
    tools.import_result = (1, "", "Traceback\nKeyError: 's3cr3t'\n")
    with pytest.raises(PyfleetError) as caught:
        wheelhouse.check_entry_importable(house, app)
    assert str(caught.value) == (
        "app demo: entry demo:app does not import: KeyError: '***'; "
        "fix entry, or add the missing package to the app's requirements"
    )
    tools.import_result = (1, "printed only\n", "")
    with pytest.raises(PyfleetError, match="does not import: printed only;"):
        wheelhouse.check_entry_importable(house, app)


def test_the_entry_check_skips_what_the_controller_cannot_run(tools, tmp_path, monkeypatch):
    monkeypatch.setattr(wheelhouse, "_cannot_run_here", lambda target: f"cannot run {target.key}")
    house = _entry_house(tmp_path, DEBIAN_13_ARM)
    assert wheelhouse.check_entry_importable(house, make_app(tmp_path)) == wheelhouse.EntryCheck(
        False, "skipped: cannot run cp313-aarch64-glibc2.41"
    )
    assert tools.calls == []


def test_build_venv_with_pip_or_uv(tools, tmp_path, monkeypatch):
    house = tmp_path / "house"
    house.mkdir()
    python = wheelhouse.build_venv(house, tmp_path / "v1", tool="pip", python="/usr/bin/python3.11")
    assert python == str(tmp_path / "v1" / "bin" / "python")
    assert tools.calls[0][1] == ["/usr/bin/python3.11", "-m", "venv", str(tmp_path / "v1")]
    assert tools.calls[1][1] == [python, "-m", "pip", "install", "--quiet", "--isolated", "--no-index",
                                 "--find-links", str(house), "-r", str(house / "requirements.lock")]  # fmt: skip
    tools.calls.clear()
    wheelhouse.build_venv(house, tmp_path / "v2", tool="uv")
    assert tools.kinds() == ["venv", "install"] and tools.calls[0][1][0] == UV
    monkeypatch.setattr(wheelhouse, "find_uv", lambda: None)
    with pytest.raises(PyfleetError) as caught:
        wheelhouse.build_venv(house, tmp_path / "v3", tool="uv")
    assert str(caught.value) == "uv is not installed on the controller; run ./bootstrap.sh"
    tools.calls.clear()
    wheelhouse.build_venv(house, tmp_path / "v4")  # no uv: pip
    assert tools.calls[0][1][:3] == [sys.executable, "-m", "venv"]


def test_build_venv_failures_name_the_app_and_the_step(tools, tmp_path):
    house = tmp_path / "house"
    house.mkdir()
    tools.fail["install"] = (1, "error: Because demo was not found in the provided package locations\n")
    with pytest.raises(PyfleetError) as caught:
        wheelhouse.build_venv(house, tmp_path / "v", app_name="demo")
    assert str(caught.value) == (
        "app demo: installing the wheelhouse into a venv failed: "
        "Because demo was not found in the provided package locations; "
        "rebuild the wheelhouse (it is incomplete or for another Python)"
    )
    tools.fail["venv"] = (1, "no python\n")
    with pytest.raises(PyfleetError) as caught:
        wheelhouse.build_venv(house, tmp_path / "v")
    assert str(caught.value) == (
        "creating a venv with uv failed: no python; rebuild the wheelhouse (it is incomplete or for another Python)"
    )
    with pytest.raises(PyfleetError) as caught:
        wheelhouse.build_venv(house, tmp_path / "v", tool="pip", app_name="demo")
    assert str(caught.value).startswith("app demo: creating a venv failed: no python; rebuild the wheelhouse")


# --- targets ----------------------------------------------------------------------


def test_target_names_and_tags():
    target = Target("3.12.10", "aarch64", "2.28")
    assert (target.python_short, target.abi, target.key) == ("3.12", "cp312", "cp312-aarch64-glibc2.28")
    assert target.platform_tags() == [f"manylinux_2_{m}_aarch64" for m in range(28, 17, -1)] + [
        "manylinux_2_17_aarch64",
        "manylinux2014_aarch64",
    ]
    old = Target("3.11.2", "x86_64", "2.12").platform_tags()
    assert old == [
        "manylinux_2_12_x86_64",
        "manylinux2010_x86_64",
        *[f"manylinux_2_{m}_x86_64" for m in range(11, 4, -1)],
        "manylinux1_x86_64",
    ]
    assert Target(glibc="2.5").platform_tags() == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert Target(glibc="2.10").uv_platform() == "x86_64-manylinux_2_17"
    assert Target(glibc="2.40").uv_platform() == "x86_64-manylinux_2_40"


def test_supported_tags_are_the_hosts_best_first():
    tags = [str(t) for t in DEBIAN_12.supported_tags()]
    assert tags[0] == "cp311-cp311-manylinux_2_36_x86_64"
    assert "cp311-abi3-manylinux_2_17_x86_64" in tags and "cp310-abi3-manylinux1_x86_64" in tags
    assert "py311-none-manylinux1_x86_64" in tags and tags[-1] == "py30-none-any"
    assert tags.index("cp311-cp311-manylinux1_x86_64") < tags.index("py3-none-any")
    assert not [t for t in tags if "aarch64" in t or "cp312" in t or "win" in t]


def test_marker_environment_is_the_hosts():
    env = Target("3.11.2", "aarch64", "2.36").marker_environment()
    assert env == {
        "implementation_name": "cpython",
        "implementation_version": "3.11.2",
        "os_name": "posix",
        "platform_machine": "aarch64",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": "3.11.2",
        "python_version": "3.11",
        "sys_platform": "linux",
    }


def test_targets_from_facts():
    assert Target.from_facts("3.11.2", "amd64", 2.36) == DEBIAN_12  # facts may come as numbers
    assert Target.from_facts("3.13.5", "arm64", "2.41") == DEBIAN_13_ARM
    assert Target.from_facts("3.13.5", "aarch64", "2.41") == DEBIAN_13_ARM
    for bad, message in (
        (("3.11.2.1", "x86_64", "2.36"), "target python '3.11.2.1' is not a full version; give it as 3.11.2"),
        (("3.11.x", "x86_64", "2.36"), "target python '3.11.x' is not a full version; give it as 3.11.2"),
        (("3.11.2", "i686", "2.36"), "target arch 'i686' is not supported; hosts must be x86_64 or aarch64"),
        (("3.11.2", "x86_64", "2.36.1"), "target glibc '2.36.1' is not a version like 2.36; give the hosts' glibc"),
    ):
        with pytest.raises(PyfleetError) as caught:
            Target.from_facts(*bad)
        assert str(caught.value) == message


# --- more of the build's decisions -------------------------------------------------


def test_a_build_into_new_directories_creates_them(tools, tmp_path):
    house = tmp_path / "new" / "deep" / "house"
    manifest = build(make_app(tmp_path), house, cache_dir=tmp_path / "c" / "d" / "cache")
    assert (house / "MANIFEST.json").is_file() and manifest["app"] == "demo"
    assert (tmp_path / "c" / "d" / "cache" / "gunicorn-23.0.0-py3-none-any.whl").is_file()


def test_the_build_works_in_a_hidden_directory_beside_the_destination(tools, tmp_path, monkeypatch):
    seen = []
    real = tools.build
    monkeypatch.setattr(
        tools, "build", lambda args, env: seen.append(Path(args[args.index("--out-dir") + 1])) or real(args, env)
    )
    build(make_app(tmp_path), tmp_path / "houses" / "demo", cache_dir=tmp_path / "cache")
    # Same file system as the destination (the final rename is atomic), and no name a reader would take for it.
    (out,) = seen
    assert out.parent.parent == tmp_path / "houses" and out.parent.name.startswith(".demo.")
    assert [p.name for p in (tmp_path / "houses").iterdir()] == ["demo"]


def test_build_errors_name_the_app(tools, tmp_path, monkeypatch):
    write_wheel(tools.index, "fastlib", "1.0", tag=f"cp311-cp311-{X86}")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "flask==3.1.0\nwerkzeug==3.1.3\njinja2==3.1.6\nmarkupsafe==3.0.2\ngunicorn==23.0.0\nfastlib==1.0\n"
    )
    app = make_app(tmp_path, requirements=requirements)
    with pytest.raises(
        PyfleetError, match=r"^app demo: no wheel of fastlib==1.0 for Python 3.13 on aarch64 glibc 2.41;"
    ):
        build(app, tmp_path / "house", target=DEBIAN_13_ARM)
    with pytest.raises(PyfleetError, match=r"^app demo: no wheel of uv==0.0.1 for Python 3.11 on x86_64 glibc 2.36;"):
        build(app, tmp_path / "house", uv_version="0.0.1")
    pinned = make_app(tmp_path, source={"requirement": "demo==4.0"}, requirements=None)
    with pytest.raises(PyfleetError, match=r"^app demo: no wheel of demo==4.0 for Python 3.11"):
        build(pinned, tmp_path / "house")


def test_the_build_checks_the_closure_with_the_extras_the_requirements_file_asks_for(tools, tmp_path, monkeypatch):
    # A resolver that missed a dependency of a pinned extra (pip resolving for the controller's
    # Python does): the check of the whole set names it.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "flask[async]==3.1.0\nwerkzeug==3.1.3\njinja2==3.1.6\nmarkupsafe==3.0.2\ngunicorn==23.0.0\n"
    )
    real = tools.compile
    monkeypatch.setattr(tools, "compile", lambda args, env: real(args, env).replace("asgiref==3.8.1\n", ""))
    with pytest.raises(PyfleetError) as caught:
        build(make_app(tmp_path, requirements=requirements), tmp_path / "house")
    assert str(caught.value) == (
        "app demo: flask needs asgiref on Python 3.11.2, which the wheelhouse lacks; "
        "add asgiref==<version> to the requirements file and re-pin"
    )


def test_the_fingerprint_ignores_key_order_and_counts_the_requirements_files_path(tmp_path):
    app, _ = _fingerprint_app(tmp_path)
    base = wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9", "r1")
    reordered = dict(app, source=dict(reversed(list(app["source"].items()))))
    assert list(reordered["source"]) != list(app["source"])
    assert wheelhouse.input_fingerprint(reordered, DEBIAN_12, "0.9.9", "r1") == base
    copy = tmp_path / "copy.txt"
    shutil.copy2(tmp_path / "requirements.txt", copy)
    assert wheelhouse.input_fingerprint(dict(app, requirements=str(copy)), DEBIAN_12, "0.9.9", "r1") != base


def test_the_fingerprint_of_a_requirement_source_reads_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(tmp_path, source={"requirement": "demo==1.0"}, requirements=None)
    (tmp_path / "demo==1.0").write_text("a file that happens to have the requirement's name")
    base = wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9")
    (tmp_path / "demo==1.0").write_text("other, longer content")
    assert wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9") == base


def test_build_or_reuse_without_a_revision_stamps_the_fingerprint_and_uses_the_cache_given(
    tools, tmp_path, monkeypatch
):
    app = make_app(tmp_path)
    monkeypatch.setattr(wheelhouse, "controller_uv_version", lambda: "0.9.9")
    monkeypatch.setattr(wheelhouse, "DEFAULT_CACHE", tmp_path / "default-cache")
    wheelhouse.build_or_reuse(app, tmp_path / "house", DEBIAN_12, cache_dir=tmp_path / "mine")
    assert (tmp_path / "house.inputs").read_text() == wheelhouse.input_fingerprint(app, DEBIAN_12, "0.9.9")
    assert (tmp_path / "mine" / "gunicorn-23.0.0-py3-none-any.whl").is_file()
    assert not (tmp_path / "default-cache").exists()


def test_the_entry_check_with_pip_an_app_without_env_and_no_pythonpath(tools, tmp_path, monkeypatch):
    monkeypatch.setattr(wheelhouse, "_cannot_run_here", lambda target: None)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    house = _entry_house(tmp_path, _here())
    app = {"name": "demo", "entry": "demo:app", "module": "demo", "callable": "app"}  # no env, no secrets
    assert wheelhouse.check_entry_importable(house, app, tool="pip").checked
    assert tools.calls[0][1][:3] == [sys.executable, "-m", "venv"]
    (entry_where,) = [(cwd, timeout) for kind, cwd, timeout in tools.where if kind == "entry"]
    venv = Path(tools.calls[0][1][-1])
    # The import runs in the throwaway directory, and cannot hang the deploy.
    assert entry_where[0] == str(venv.parent) and entry_where[1] > 0
    tools.import_result = (1, "", "ModuleNotFoundError: No module named 'demo'\n")
    with pytest.raises(
        PyfleetError, match=r"^app demo: entry demo:app does not import: ModuleNotFoundError: No module"
    ):
        wheelhouse.check_entry_importable(house, app)
    tools.fail["install"] = (1, "error: no wheel for demo\n")
    with pytest.raises(
        PyfleetError, match=r"^app demo: installing the wheelhouse into a venv failed: no wheel for demo;"
    ):
        wheelhouse.check_entry_importable(house, app)


def test_a_failed_pip_build_is_one_line(tools, tmp_path, monkeypatch):
    monkeypatch.setattr(wheelhouse, "find_uv", lambda: None)
    tools.fail["build"] = (1, "error: subprocess-exited-with-error\n")
    with pytest.raises(PyfleetError) as caught:
        build(make_app(tmp_path), tmp_path / "house")
    assert str(caught.value) == (
        f"app demo: building a wheel from {tmp_path / 'demo'} failed: subprocess-exited-with-error; "
        "fix the project so that `uv build --wheel` works there"
    )


def test_static_files_from_a_wheel_with_directory_entries_and_deep_trees(tools, tmp_path):
    wheel = tmp_path / "demo-2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for member, data in (
            ("demo/", None),
            ("demo/webX/", None),
            ("demo/webX/img/icons/a.png", b"a"),
            ("demo/webX/img/icons/b.png", b"b"),
            ("demo/webX/img/", None),
            ("demo/webX/top.css", b"t"),
            ("demo/web/other.css", b"o"),
            (
                "demo-2.0.dist-info/METADATA",
                b"Metadata-Version: 2.1\nName: demo\nVersion: 2.0\nRequires-Dist: flask>=3\n",
            ),
            ("demo-2.0.dist-info/RECORD", b"demo/webX/top.css,sha256=x,1\ndemo-2.0.dist-info/RECORD,,\n"),
        ):
            zf.writestr(member, data or b"")
    house = tmp_path / "house"
    build(make_app(tmp_path, source={"wheel": str(wheel)}, static_dir="demo/webX"), house)
    static = house / "static"
    assert sorted(str(p.relative_to(static)) for p in static.rglob("*") if p.is_file()) == [
        "img/icons/a.png",
        "img/icons/b.png",
        "top.css",
    ]
    assert (static / "img" / "icons" / "b.png").read_bytes() == b"b"


def test_the_closure_check_goes_on_after_a_dependency_seen_before_or_out_of_its_markers(tmp_path):
    wheels = _closure_wheels(tmp_path, app__1=["y", "z", "b"], b__1=["z"], z__1=[], y__1=["lacking"])
    with pytest.raises(PyfleetError, match=r"^app demo: y needs lacking on Python 3.11.2"):
        wheelhouse._check_closure("demo", "app", wheels, DEBIAN_12, None)
    wheels = _closure_wheels(tmp_path, app__2=["colorama; sys_platform == 'win32'", "lacking"])
    with pytest.raises(PyfleetError, match=r"^app demo: app needs lacking on Python 3.11.2"):
        wheelhouse._check_closure("demo", "app", wheels, DEBIAN_12, None)


def test_a_pinned_pre_release_satisfies_a_range_that_does_not_name_one(tmp_path):
    # The requirements file pinned it on purpose; pip installs it too.
    wheels = _closure_wheels(tmp_path, app__1=["click>=8"], click__9_0rc1=[])
    wheelhouse._check_closure("demo", "app", wheels, DEBIAN_12, None)


def test_extras_in_a_pinned_line_with_spaces(tmp_path):
    req_file = tmp_path / "requirements.txt"
    req_file.write_text("kombu [vine] == 5.0\n")
    plain = _closure_wheels(tmp_path, app__3=[], kombu__5_0=["vine; extra == 'vine'"])
    with pytest.raises(PyfleetError, match=r"^app demo: kombu needs vine on Python 3.11.2"):
        wheelhouse._check_closure("demo", "app", plain, DEBIAN_12, str(req_file))


def test_a_glibc_without_a_version_is_older_than_any(monkeypatch):
    monkeypatch.setattr(wheelhouse.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(wheelhouse.platform, "libc_ver", lambda: ("glibc", ""))
    assert (
        wheelhouse._cannot_run_here(_here())
        == "the controller's C library (glibc ) is older than the hosts' glibc 2.17"
    )


def test_last_line_keeps_the_words_own_letters():
    assert wheelhouse._last_line("error: cannot find libX") == "cannot find libX"
    assert wheelhouse._last_line("X11 is missing.X.") == "X11 is missing.X"


def test_the_cache_finds_a_wheel_whose_file_name_spells_the_project_otherwise(tmp_path):
    (tmp_path / "Zope.Interface-7.0-py3-none-any.whl").write_text("")
    assert wheelhouse._cached_wheel(tmp_path, "zope-interface", "7.0", DEBIAN_12).name == (
        "Zope.Interface-7.0-py3-none-any.whl"
    )


def test_the_cache_looks_past_the_other_projects_wheels(tmp_path):
    for i in range(30):
        (tmp_path / f"other{i}-1.0-py3-none-any.whl").write_text("")
        (tmp_path / f"lib-0.{i}-py3-none-any.whl").write_text("")
        (tmp_path / f"lib-1.0-{i}.whl").write_text("")  # not a wheel name: skipped
    (tmp_path / "lib-1.0-py3-none-any.whl").write_text("")
    assert wheelhouse._cached_wheel(tmp_path, "lib", "1.0", DEBIAN_12).name == "lib-1.0-py3-none-any.whl"


def test_the_hosts_tags_do_not_follow_the_controllers_python(monkeypatch):
    # A free-threaded (or debug) controller Python has other ABI tags than the hosts' Python.
    import packaging.tags

    real = packaging.tags._get_config_var
    monkeypatch.setattr(
        packaging.tags, "_get_config_var", lambda name, warn=False: 1 if name == "Py_GIL_DISABLED" else real(name, warn)
    )
    tags = {str(t) for t in DEBIAN_13_ARM.supported_tags()}
    assert "cp313-cp313-manylinux_2_17_aarch64" in tags
    assert not [t for t in tags if "cp313t" in t]
    # Pure-Python tags are the hosts' version and platforms, not this interpreter's.
    assert {"cp313-none-any", "py313-none-any", "py313-none-manylinux_2_41_aarch64"} <= tags
    assert "cp311-none-any" not in tags and not [t for t in tags if "x86_64" in t]


@pytest.mark.parametrize("inside", ["../../../escaped.txt", "{tmp_path}/escaped.txt"])
def test_a_static_file_of_a_wheel_cannot_land_outside_the_wheelhouse(tools, tmp_path, inside):
    # A wheel from an index is not ours: a member path with .. or a leading / must not write elsewhere.
    member = "demo/static/" + inside.format(tmp_path=tmp_path)
    wheel = write_wheel(tmp_path, "demo", "2.0", {"demo/static/ok.css": "ok", member: "x"}, requires=["flask>=3"])
    app = make_app(tmp_path, source={"wheel": str(wheel)}, static_dir="demo/static")
    with pytest.raises(PyfleetError) as caught:
        build(app, tmp_path / "houses" / "house", cache_dir=tmp_path / "cache")
    assert str(caught.value) == (
        f"app demo: demo-2.0-py3-none-any.whl holds {member}, which leaves static_dir demo/static; "
        "rebuild the wheel without it"
    )
    assert list((tmp_path / "houses").iterdir()) == [] and not (tmp_path / "escaped.txt").exists()
