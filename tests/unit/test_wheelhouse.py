"""Tests for pyfleet.wheelhouse: real builds of examples/sampleapp, from the local wheels of conftest.py."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from pyfleet import wheelhouse
from pyfleet.apps import normalize_apps
from pyfleet.errors import PyfleetError
from pyfleet.wheelhouse import (
    DEBIAN_12,
    DEBIAN_13_ARM,
    Target,
    build_or_reuse,
    build_wheelhouse,
    check_entry_importable,
    content_hash,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sampleapp"


def sample_app(tmp_path=None, check_paths=True, **overrides):
    """The normalised sampleapp spec (paths absolute), with overrides."""
    spec = {
        "name": "sampleapp",
        "source": {"path": str(SAMPLE)},
        "requirements": str(SAMPLE / "requirements.txt"),
        "kind": "wsgi",
        "entry": "sampleapp.wsgi:app",
        "domains": ["sampleapp.lab.test"],
        "static_dir": "static",
    }
    spec.update(overrides)
    return normalize_apps([spec], project_dir=tmp_path or ROOT, check_paths=check_paths)[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One wheel cache for the module: the first build downloads, the rest reuse it."""
    return tmp_path_factory.mktemp("wheel-cache")


@pytest.fixture(scope="module")
def built(tmp_path_factory, cache):
    """Two builds of the same inputs into two directories: (dir1, manifest1, dir2, manifest2)."""
    base = tmp_path_factory.mktemp("houses")
    first = build_wheelhouse(sample_app(), base / "one", target=DEBIAN_12, cache_dir=cache)
    second = build_wheelhouse(sample_app(), base / "two", target=DEBIAN_12, cache_dir=cache)
    return base / "one", first, base / "two", second


def _wheels(house):
    """{canonical name: version} of the wheels at the top of a wheelhouse."""
    found = {}
    for path in house.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(path.name)
        assert name not in found, f"two wheels of {name}"
        found[str(name)] = str(version)
    return found


def _lock(house):
    """{name: version} from requirements.lock, checking every line is name==version."""
    pins = {}
    for line in (house / "requirements.lock").read_text().splitlines():
        name, sep, version = line.partition("==")
        assert sep and name and version and " " not in line, line
        pins[name] = version
    return pins


def test_lock_pins_exactly_the_wheels_present(built):
    house, manifest, _, _ = built
    assert _lock(house) == _wheels(house)
    lock = _lock(house)
    assert lock["sampleapp"] == "1.0.0"
    for needed in ("flask", "celery", "redis", "gunicorn", "uvicorn", "uvicorn-worker"):
        assert needed in lock
    # Debian 12's Python is 3.11.2: redis needs async-timeout there, though not on 3.11.3+.
    assert "async-timeout" in lock
    assert manifest["unpinned"] == []


def test_uv_ships_for_the_hosts_but_is_not_installed_into_the_venv(built):
    house, manifest, _, _ = built
    (uv_wheel,) = (house / "uv").glob("uv-*.whl")
    assert manifest["uv_wheel"] == f"uv/{uv_wheel.name}"
    assert "x86_64" in uv_wheel.name
    assert "uv" not in _lock(house)


def test_wheels_are_for_the_hosts_platform(built):
    house, _, _, _ = built
    supported = set(DEBIAN_12.supported_tags())
    for path in house.rglob("*.whl"):
        assert set(parse_wheel_filename(path.name)[3]) & supported, path.name


def test_static_files_travel_in_the_wheelhouse(built):
    house, manifest, _, _ = built
    assert manifest["static"] == "static"
    assert (house / "static" / "hello.txt").read_text() == (SAMPLE / "static" / "hello.txt").read_text()
    assert "static/hello.txt" in manifest["files"]


def test_static_dir_of_a_wheel_source_comes_from_inside_the_wheel(built, cache, tmp_path):
    house, _, _, _ = built
    (app_wheel,) = house.glob("sampleapp-*.whl")
    app = sample_app(source={"wheel": str(app_wheel)}, static_dir="sampleapp")
    manifest = build_wheelhouse(app, tmp_path / "house", target=DEBIAN_12, cache_dir=cache)
    assert (tmp_path / "house" / "static" / "wsgi.py").is_file()
    assert "static/version.py" in manifest["files"]
    with pytest.raises(PyfleetError, match=r"^app sampleapp: static_dir nothere is not in sampleapp-1.0.0-py3"):
        build_wheelhouse(
            sample_app(source={"wheel": str(app_wheel)}, static_dir="nothere"),
            tmp_path / "other",
            target=DEBIAN_12,
            cache_dir=cache,
        )


def test_manifest_hashes_every_file_and_is_stable(built):
    house, manifest, house2, manifest2 = built
    on_disk = {str(p.relative_to(house)) for p in house.rglob("*") if p.is_file()} - {"MANIFEST.json"}
    assert set(manifest["files"]) == on_disk
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((house / rel).read_bytes()).hexdigest() == digest
    assert manifest["content_hash"].startswith("sha256:")
    assert manifest2["content_hash"] == manifest["content_hash"]
    assert content_hash(house2) == manifest["content_hash"]
    # The app's wheel is reproducible too, so the whole manifest is.
    assert (house / "MANIFEST.json").read_text() == (house2 / "MANIFEST.json").read_text()
    assert json.loads((house / "MANIFEST.json").read_text())["target"] == {
        "python": "3.11.2",
        "arch": "x86_64",
        "glibc": "2.36",
    }


def test_code_only_change_downloads_nothing_and_changes_the_hash(built, cache, tmp_path, monkeypatch):
    house, manifest, _, _ = built
    project = tmp_path / "sampleapp"
    shutil.copytree(SAMPLE, project)
    (project / "sampleapp" / "version.py").write_text('VERSION = "1.0.1"\n')

    def no_download(*args):
        raise AssertionError(f"downloaded {args[1]}")

    monkeypatch.setattr(wheelhouse, "_download", no_download)
    changed = build_wheelhouse(
        sample_app(source={"path": str(project)}), tmp_path / "house", target=DEBIAN_12, cache_dir=cache
    )
    assert changed["content_hash"] != manifest["content_hash"]
    assert _lock(tmp_path / "house") == _lock(house)


def test_rebuild_replaces_the_old_wheelhouse(built, cache):
    house, manifest, _, _ = built
    (house / "stale.whl").write_text("left over")
    again = build_wheelhouse(sample_app(), house, target=DEBIAN_12, cache_dir=cache)
    assert not (house / "stale.whl").exists()
    assert again["content_hash"] == manifest["content_hash"]


def test_bad_requirement_is_one_line_naming_app_and_fix(tmp_path, cache):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text((SAMPLE / "requirements.txt").read_text() + "doesnotexist-pyfleet-xyz==1.0\n")
    app = sample_app(requirements=str(requirements))
    with pytest.raises(PyfleetError) as caught:
        build_wheelhouse(app, tmp_path / "house", target=DEBIAN_12, cache_dir=cache)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("app sampleapp: resolving its requirements for Python 3.11.2 on x86_64 failed: ")
    assert "doesnotexist-pyfleet-xyz" in message
    assert message.endswith("; fix the requirement (name and version must exist with a wheel for the hosts) and re-pin")
    assert not (tmp_path / "house").exists()


def test_missing_server_package_is_reported(tmp_path, cache):
    # sampleapp's own metadata does not ask for gunicorn: only its requirements file pins it.
    app = sample_app(requirements=None)
    with pytest.raises(PyfleetError, match=r"^app sampleapp: the wheelhouse lacks gunicorn, which server gunicorn"):
        build_wheelhouse(app, tmp_path / "house", target=DEBIAN_12, cache_dir=cache)


def test_build_failure_keeps_the_tool_last_line(tmp_path, cache):
    project = tmp_path / "broken"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "broken"\nversion = "1"\ndependencies = ["flask"\n')
    app = sample_app(source={"path": str(project)}, requirements=None, static_dir=None)
    with pytest.raises(PyfleetError) as caught:
        build_wheelhouse(app, tmp_path / "house", target=DEBIAN_12, cache_dir=cache)
    message = str(caught.value)
    assert message.startswith(f"app sampleapp: building a wheel from {project} failed: ")
    assert message.endswith("; fix the project so that `uv build --wheel` works there")
    assert "\n" not in message


def test_entry_imports_from_the_wheelhouse(built):
    house, _, _, _ = built
    result = check_entry_importable(house, sample_app())
    if not result.checked:
        pytest.skip(result.detail)
    assert result.detail.startswith("entry sampleapp.wsgi:app imports")


def test_wrong_entry_is_one_line(built):
    house, _, _, _ = built
    # The controller's pre-check (pyfleet.apps) would refuse it first; the build checks the artifact itself.
    app = sample_app(entry="sampleapp.wsgy:app", secrets={"TOKEN": "s3cr3t-value"}, check_paths=False)
    if not check_entry_importable(house, sample_app()).checked:
        pytest.skip("the controller cannot run the hosts' wheels")
    with pytest.raises(PyfleetError) as caught:
        check_entry_importable(house, app)
    assert str(caught.value) == (
        "app sampleapp: entry sampleapp.wsgy:app does not import: "
        "ModuleNotFoundError: No module named 'sampleapp.wsgy'; "
        "fix entry, or add the missing package to the app's requirements"
    )


def test_entry_check_skips_for_another_python(tmp_path):
    (tmp_path / "MANIFEST.json").write_text(
        json.dumps({"target": {"python": "3.9.2", "arch": "x86_64", "glibc": "2.31"}})
    )
    result = check_entry_importable(tmp_path, sample_app())
    assert not result.checked and result.detail.startswith("skipped: the controller runs Python")


def test_pip_fallback_gives_the_same_wheelhouse(built, cache, tmp_path, monkeypatch):
    _, manifest, _, _ = built
    monkeypatch.setenv("PYFLEET_NO_UV", "1")
    again = build_wheelhouse(sample_app(), tmp_path / "house", target=DEBIAN_12, cache_dir=cache)
    assert again["content_hash"] == manifest["content_hash"]


# --- targets (no network) ------------------------------------------------------------


def test_platform_tags_go_down_to_the_oldest_manylinux():
    tags = DEBIAN_12.platform_tags()
    assert tags[0] == "manylinux_2_36_x86_64"
    assert tags.index("manylinux_2_17_x86_64") + 1 == tags.index("manylinux2014_x86_64")
    assert tags[-1] == "manylinux1_x86_64"
    arm = DEBIAN_13_ARM.platform_tags()
    assert arm[0] == "manylinux_2_41_aarch64" and arm[-1] == "manylinux2014_aarch64"


def test_uv_platform_is_clamped_to_what_uv_knows():
    assert DEBIAN_12.uv_platform() == "x86_64-manylinux_2_36"
    assert DEBIAN_13_ARM.uv_platform() == "aarch64-manylinux_2_40"


def test_target_from_facts_and_its_errors():
    assert Target.from_facts("3.11.2", "amd64", "2.36") == DEBIAN_12
    assert DEBIAN_13_ARM.abi == "cp313" and DEBIAN_13_ARM.key == "cp313-aarch64-glibc2.41"
    for args, message in [
        (("3.11", "x86_64", "2.36"), "target python '3.11' is not a full version; give it as 3.11.2"),
        (
            ("3.11.2", "ppc64le", "2.36"),
            "target arch 'ppc64le' is not supported; hosts must be x86_64 or aarch64",
        ),
        (
            ("3.11.2", "x86_64", "musl"),
            "target glibc 'musl' is not a version like 2.36; give the hosts' glibc",
        ),
    ]:
        with pytest.raises(PyfleetError) as caught:
            Target.from_facts(*args)
        assert str(caught.value) == message


def test_cache_picks_the_best_wheel_for_the_target(tmp_path):
    names = [
        "zope.interface-7.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "zope.interface-7.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        "zope.interface-7.0-cp311-cp311-manylinux_2_28_aarch64.whl",
        "zope.interface-7.0-cp313-cp313-manylinux_2_28_x86_64.whl",
        "zope.interface-7.0-cp311-cp311-musllinux_1_2_x86_64.whl",
        "zope.interface-6.0-cp311-cp311-manylinux_2_36_x86_64.whl",
        "zope.interface-7.0-cp311-cp311-manylinux_2_39_x86_64.whl",  # too new for glibc 2.36
    ]
    for name in names:
        (tmp_path / name).write_text("")
    best = wheelhouse._cached_wheel(tmp_path, "zope-interface", "7.0", DEBIAN_12)
    assert best.name == "zope.interface-7.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    arm = wheelhouse._cached_wheel(tmp_path, "zope-interface", "7.0", Target("3.11.2", "aarch64", "2.36"))
    assert arm.name == "zope.interface-7.0-cp311-cp311-manylinux_2_28_aarch64.whl"
    assert wheelhouse._cached_wheel(tmp_path, "zope-interface", "7.0", Target("3.12.3", "x86_64", "2.36")) is None


def test_unchanged_inputs_reuse_the_wheelhouse_and_any_change_rebuilds_it(cache, tmp_path, monkeypatch):
    project = tmp_path / "sampleapp"
    shutil.copytree(SAMPLE, project, ignore=shutil.ignore_patterns("__pycache__"))
    app = sample_app(source={"path": str(project)})
    house = tmp_path / "house"
    builds = []
    real_build = wheelhouse.build_wheelhouse

    def counted(*args, **kwargs):
        builds.append(args[0]["name"])
        return real_build(*args, **kwargs)

    monkeypatch.setattr(wheelhouse, "build_wheelhouse", counted)
    first = build_or_reuse(app, house, DEBIAN_12, revision="abc", cache_dir=cache)
    assert build_or_reuse(app, house, DEBIAN_12, revision="abc", cache_dir=cache) == first
    # Bytecode and tool caches never go into a wheel: no rebuild.
    (project / "sampleapp" / "__pycache__").mkdir(exist_ok=True)
    (project / "sampleapp" / "__pycache__" / "wsgi.cpython-311.pyc").write_bytes(b"x")
    (project / ".pytest_cache").mkdir()
    build_or_reuse(app, house, DEBIAN_12, revision="abc", cache_dir=cache)
    assert len(builds) == 1
    # Each of these is a new input: a commit, an edited file, another target.
    build_or_reuse(app, house, DEBIAN_12, revision="abd", cache_dir=cache)
    (project / "sampleapp" / "version.py").write_text('VERSION = "1.0.2"\n')
    edited = build_or_reuse(app, house, DEBIAN_12, revision="abd", cache_dir=cache)
    assert len(builds) == 3
    assert edited["content_hash"] != first["content_hash"]
    (project / "sampleapp" / "new_module.py").write_text("X = 1\n")
    build_or_reuse(app, house, DEBIAN_12, revision="abd", cache_dir=cache)
    assert len(builds) == 4


def test_a_wheelhouse_with_unpinned_dependencies_is_always_resolved_again(cache, tmp_path, monkeypatch):
    app = sample_app()
    house = tmp_path / "house"
    build_or_reuse(app, house, DEBIAN_12, cache_dir=cache)
    manifest = json.loads((house / "MANIFEST.json").read_text())
    (house / "MANIFEST.json").write_text(json.dumps(dict(manifest, unpinned=["flask"])))
    builds = []
    monkeypatch.setattr(wheelhouse, "build_wheelhouse", lambda *a, **k: builds.append(a) or manifest)
    build_or_reuse(app, house, DEBIAN_12, cache_dir=cache)
    assert len(builds) == 1
