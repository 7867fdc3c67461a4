"""The release module's build with uv, as on a host: a shipped artifact becomes releases/<id>.

The artifact is a real tar with a real wheel; its uv wheel holds a script that
records what the module asks of uv (arguments and environment) and runs the
controller's uv, so a build takes about a second.
"""

import grp
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from release_module import rel, tiny_wheel

REAL_UV = Path(sys.executable).parent / "uv"
OLD, NEW = "20261124T050000Z", "20261124T050100Z"
HASH = "sha256:" + "ab" * 32
UV_SCRIPT = """#!/bin/sh
printf '%s|%s|%s|%s|%s|%s|%s\\n' "$UV_CACHE_DIR" "$UV_NO_CONFIG" "$UV_PYTHON_DOWNLOADS" \\
    "$PIP_DISABLE_PIP_VERSION_CHECK" "${PYTHONPATH-unset}" "$PYFLEET_HOST_MARK" "$*" >> "$(dirname "$0")/calls.log"
exec {uv} "$@"
"""


def artifact(tmp_path, lock="tiny==1.0\n", manifest=None):
    """The shipped tar (wheel, lock, manifest, static files, uv wheel); returns its path."""
    house = tmp_path / "src"
    (house / "uv").mkdir(parents=True)
    (house / "static").mkdir()
    tiny_wheel(house / "tiny-1.0-py3-none-any.whl")
    (house / "requirements.lock").write_text(lock, encoding="utf-8")
    if manifest is None:
        manifest = json.dumps({"project": "tiny", "version": "1.0", "content_hash": "sha256:00"})
    (house / "MANIFEST.json").write_text(manifest, encoding="utf-8")
    (house / "static" / "hello.txt").write_text("hi\n", encoding="utf-8")
    with zipfile.ZipFile(house / "uv" / "uv-0.13.9-py3-none-manylinux_2_17_x86_64.whl", "w") as zf:
        zf.writestr("uv-0.13.9.data/scripts/uv", UV_SCRIPT.replace("{uv}", str(REAL_UV)))
    tar_path = tmp_path / "app" / "wheelhouse" / "art.tar"
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar_path, "w") as tar:
        for path in sorted(house.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(house)), recursive=False)
    return tar_path


def params(tmp_path, tar_path, **overrides):
    values = {
        "app": "hello",
        "base_dir": str(tmp_path / "app"),
        "release": NEW,
        "new_release": None,
        "artifact": str(tar_path),
        "artifact_hash": HASH,
        "config_files": [],
        "installer": "uv",
        "python": sys.executable,
        "uv_dir": str(tmp_path / "uvdir"),
        "cache_dir": str(tmp_path / "cache"),
        "compile_bytecode": True,
        "group": None,
        "revision": {"commit": "abc123"},
        "force": False,
    }
    values.update(overrides)
    return values


def uv_calls(tmp_path):
    return [line.split("|") for line in (tmp_path / "uvdir" / "0.13.9" / "calls.log").read_text().splitlines()]


@pytest.fixture(autouse=True)
def host_environment(monkeypatch):
    """A host's environment: none of the installer settings the unit tests' session sets (conftest.py)."""
    for name in ("PIP_DISABLE_PIP_VERSION_CHECK", "UV_NO_CONFIG", "UV_CACHE_DIR", "UV_PYTHON_DOWNLOADS", "PYTHONPATH"):
        monkeypatch.delenv(name, raising=False)


def test_build_with_uv_makes_a_complete_release_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/controller/site")  # never reaches the release's venv
    monkeypatch.setenv("PYFLEET_HOST_MARK", "kept")  # the rest of the host's environment does
    tar_path = artifact(tmp_path)
    group = next(g for g in grp.getgrall() if g.gr_gid != 0)
    result = rel.action_build(params(tmp_path, tar_path, group=group.gr_name))
    assert {k: v for k, v in result.items() if k != "seconds"} == {
        "changed": True,
        "release": NEW,
        "previous": None,
        "new": True,
        "built": True,
    }
    assert sorted(result["seconds"]) == ["total", "unpack", "venv"]
    assert all(isinstance(v, float) and 0 <= v < 60 for v in result["seconds"].values())

    base = tmp_path / "app"
    release = base / "releases" / NEW
    house = base / "wheelhouse" / "abababababababab"
    venv = release / "venv"
    # uv: its own cache and no config or downloads, the host's environment without PYTHONPATH.
    settings = [str(tmp_path / "cache"), "1", "never", "1", "unset", "kept"]
    assert uv_calls(tmp_path) == [
        [*settings, f"venv --quiet --python {sys.executable} {venv}"],
        [
            *settings,
            f"pip install --quiet --offline --no-index --find-links {house} --python {venv}/bin/python "
            f"-r {house}/requirements.lock --compile-bytecode",
        ],
    ]
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert (site / "tiny.py").read_text() == "VALUE = 42\n"
    assert list((site / "__pycache__").glob("tiny.*.pyc"))
    # root:<group> 0750: the app reads its release, others nothing.
    info = release.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, group.gr_gid, 0o750)
    assert (release / "static" / "hello.txt").read_text() == "hi\n"
    assert os.readlink(release / "shared") == "../../shared"
    revision = dict(line.split("=", 1) for line in (release / "REVISION").read_text().splitlines())
    built_at = revision.pop("built_at")
    assert len(built_at) == 20 and built_at.endswith("Z") and built_at[10] == "T"
    assert revision == {
        "commit": "abc123",
        "release": NEW,
        "app": "hello",
        "project": "tiny",
        "version": "1.0",
        "artifact_hash": HASH,
        "wheelhouse_hash": "sha256:00",
        "installer": "uv",
    }
    meta = json.loads((release / rel.META).read_text())
    assert meta == dict(revision, built_at=built_at, config_hash=rel.sha256_files([]), wheelhouse=str(house))
    assert not tar_path.exists()  # unpacked, then removed
    assert (house / "MANIFEST.json").exists() and not Path(f"{house}.tmp").exists()
    # What info reports now, and a second build of the same artifact and config changes nothing.
    apps = rel.action_info({"apps": {"hello": str(base)}})["apps"]["hello"]
    assert (apps["releases"], apps["wheelhouses"], apps["release_hashes"]) == ([NEW], [house.name], {NEW: HASH})
    again = rel.action_build(params(tmp_path, tar_path))
    assert (again["release"], again["built"], again["changed"]) == (NEW, False, False)


def test_build_without_compiling_and_a_stale_uv_directory(tmp_path):
    tar_path = artifact(tmp_path)
    (tmp_path / "uvdir" / "0.13.9").mkdir(parents=True)  # an earlier unpack that stopped before the binary
    rel.action_build(params(tmp_path, tar_path, compile_bytecode=False))
    assert not uv_calls(tmp_path)[1][-1].endswith("--compile-bytecode")
    venv = tmp_path / "app" / "releases" / NEW / "venv"
    assert stat.S_IMODE((tmp_path / "uvdir" / "0.13.9" / "uv").stat().st_mode) == 0o755
    assert not list(next((venv / "lib").glob("python3*/site-packages")).glob("__pycache__/tiny.*"))


@pytest.mark.parametrize(
    "lock, manifest, python, reason",
    [
        ("nothere==1.0\n", None, sys.executable, r"installing the wheelhouse with uv: .*nothere"),
        ("tiny==1.0\n", "{not json", sys.executable, r"JSONDecodeError: Expecting property name"),
        ("tiny==1.0\n", None, "/nonexistent/python3", r"creating the venv with uv: .*/nonexistent/python3"),
    ],
)
def test_a_failed_build_leaves_no_release_behind(tmp_path, lock, manifest, python, reason):
    tar_path = artifact(tmp_path, lock=lock, manifest=manifest)
    with pytest.raises(rel.Failed, match=rf"^building release {NEW} failed: {reason}"):
        rel.action_build(params(tmp_path, tar_path, python=python))
    assert os.listdir(tmp_path / "app" / "releases") == []
    # The unpacked wheelhouse stays for the next try; the tar is gone.
    assert os.listdir(tmp_path / "app" / "wheelhouse") == ["abababababababab"]


def test_unpack_starts_over_after_an_interrupted_unpack(tmp_path):
    tar_path = artifact(tmp_path)
    leftover = tmp_path / "app" / "wheelhouse" / "abababababababab.tmp"
    leftover.mkdir()
    (leftover / "half.whl").write_text("cut off")
    rel.action_build(params(tmp_path, tar_path))
    assert sorted(os.listdir(tmp_path / "app" / "wheelhouse")) == ["abababababababab"]
    assert not (tmp_path / "app" / "wheelhouse" / "abababababababab" / "half.whl").exists()


def test_build_replaces_a_half_built_release_of_the_same_id(tmp_path):
    tar_path = artifact(tmp_path)
    half = tmp_path / "app" / "releases" / NEW
    (half / "venv").mkdir(parents=True)  # an earlier build that stopped before its metadata
    (half / "venv" / "broken").write_text("cut off")
    rel.action_build(params(tmp_path, tar_path))
    assert not (half / "venv" / "broken").exists()
    assert rel.releases(str(tmp_path / "app")) == [NEW]


def test_build_in_check_mode_reports_and_builds_nothing(tmp_path):
    tar_path = artifact(tmp_path)
    result = rel.action_build(params(tmp_path, tar_path, _check_mode=True))
    assert result == {"changed": True, "release": NEW, "previous": None, "new": True, "built": True, "seconds": {}}
    assert sorted(os.listdir(tmp_path / "app")) == ["wheelhouse"]
    assert tar_path.exists()


def test_build_never_rebuilds_the_current_release(tmp_path):
    tar_path = artifact(tmp_path)
    rel.action_build(params(tmp_path, tar_path))
    rel.switch_current(str(tmp_path / "app"), NEW)
    env = tmp_path / "hello.env"
    env.write_text("A=2\n")
    with pytest.raises(rel.Failed, match=rf"^release {NEW} is current; choose a new release id$"):
        rel.action_build(params(tmp_path, tar_path, force=True, config_files=[str(env)]))
    assert rel.releases(str(tmp_path / "app")) == [NEW]


def test_build_names_the_artifact_that_was_never_shipped(tmp_path):
    missing = tmp_path / "app" / "wheelhouse" / "art.tar"
    house = tmp_path / "app" / "wheelhouse" / "abababababababab"
    with pytest.raises(
        rel.Failed,
        match=rf"^building release {NEW} failed: artifact {missing} is not on the host and {house} is not unpacked; ship it first$",
    ):
        rel.action_build(params(tmp_path, missing))


def test_chown_group_gives_the_release_to_root_and_the_apps_group(tmp_path):
    group = next(g for g in grp.getgrall() if g.gr_gid != 0)
    for name, gid in ((group.gr_name, group.gr_gid), (None, 0)):
        path = tmp_path / str(name)
        path.mkdir(mode=0o777)
        rel.chown_group(str(path), name)
        info = path.stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, gid, 0o750)
    with pytest.raises(rel.Failed, match=r"^group pyfleet-no-such-group does not exist: no output$"):
        rel.chown_group(str(tmp_path), "pyfleet-no-such-group")


@pytest.mark.parametrize(
    "wheel, error",
    [
        (None, "{house} has no uv wheel; use installer pip or rebuild the wheelhouse"),
        ("uv-0.13.9.data/scripts/uvx", "uv-0.13.9-py3-none-any.whl holds no uv binary; rebuild the wheelhouse"),
    ],
)
def test_ensure_uv_refuses_a_wheelhouse_without_uv(tmp_path, wheel, error):
    house = tmp_path / "house"
    house.mkdir()
    if wheel:
        (house / "uv").mkdir()
        with zipfile.ZipFile(house / "uv" / "uv-0.13.9-py3-none-any.whl", "w") as zf:
            zf.writestr(wheel, "#!/bin/sh\n")
    with pytest.raises(rel.Failed) as failed:
        rel.ensure_uv(str(house), str(tmp_path / "uvdir"))
    assert str(failed.value) == error.format(house=house)


def test_info_on_a_host_without_glibc_or_a_cpu_count(monkeypatch):
    monkeypatch.setattr(rel.os, "confstr", lambda name: None)  # musl
    monkeypatch.setattr(rel.os, "cpu_count", lambda: None)
    info = rel.action_info({"apps": {}})
    assert (info["glibc"], info["cpus"]) == ("0.0", 1)


FAKE_PYTHON = """#!/bin/sh
# python3 -m venv DIR: a venv whose pip records its arguments and environment, then does {pip}.
echo "venv|$PIP_DISABLE_PIP_VERSION_CHECK|${PYTHONPATH-unset}|$*" >> "{log}"
mkdir -p "$3/bin"
cat > "$3/bin/pip" <<'PIP'
#!/bin/sh
echo "pip|$PIP_DISABLE_PIP_VERSION_CHECK|${PYTHONPATH-unset}|$*" >> "{log}"
{pip}
PIP
chmod +x "$3/bin/pip"
"""


@pytest.mark.parametrize("compile_bytecode", [False, True])
def test_build_with_pip_runs_the_venvs_pip_offline_and_isolated(tmp_path, monkeypatch, compile_bytecode):
    monkeypatch.setenv("PYTHONPATH", "/controller/site")
    log = tmp_path / "calls.log"
    python = tmp_path / "python3"
    python.write_text(FAKE_PYTHON.replace("{log}", str(log)).replace("{pip}", "exit 0"), encoding="utf-8")
    python.chmod(0o755)
    tar_path = artifact(tmp_path)
    rel.action_build(params(tmp_path, tar_path, installer="pip", python=str(python), compile_bytecode=compile_bytecode))
    venv = tmp_path / "app" / "releases" / NEW / "venv"
    house = tmp_path / "app" / "wheelhouse" / "abababababababab"
    no_compile = "" if compile_bytecode else " --no-compile"
    assert log.read_text().splitlines() == [
        f"venv|1|unset|-m venv {venv}",
        f"pip|1|unset|install --quiet --isolated --no-index --find-links {house} -r {house}/requirements.lock{no_compile}",
    ]
    meta = json.loads((venv.parent / rel.META).read_text())
    assert meta["installer"] == "pip"


@pytest.mark.parametrize(
    "pip, error",
    [
        (None, "creating the venv with python3 -m venv: Error: no such python"),
        (
            "echo 'ERROR: No matching distribution found for tiny==1.0'; exit 1",
            "installing the wheelhouse with pip: ERROR: No matching distribution found for tiny==1.0",
        ),
    ],
)
def test_a_failed_pip_build_names_its_step(tmp_path, pip, error):
    python = tmp_path / "python3"
    if pip is None:
        python.write_text("#!/bin/sh\necho 'Error: no such python'\nexit 1\n", encoding="utf-8")
    else:
        python.write_text(FAKE_PYTHON.replace("{log}", str(tmp_path / "log")).replace("{pip}", pip), encoding="utf-8")
    python.chmod(0o755)
    tar_path = artifact(tmp_path)
    with pytest.raises(rel.Failed) as failed:
        rel.action_build(params(tmp_path, tar_path, installer="pip", python=str(python)))
    assert str(failed.value) == f"building release {NEW} failed: {error}"
    assert os.listdir(tmp_path / "app" / "releases") == []


def test_a_second_build_from_the_unpacked_wheelhouse(tmp_path):
    """Another release of the same artifact (the config changed): the tar is not needed again, or removed if re-shipped."""
    tar_path = artifact(tmp_path)
    rel.action_build(params(tmp_path, tar_path))
    rel.action_build(params(tmp_path, None, release="20261124T050200Z", config_files=[str(tmp_path / "new.env")]))
    tar_path.write_bytes(b"shipped again")
    rel.action_build(params(tmp_path, tar_path, release="20261124T050300Z", config_files=[str(tmp_path / "a.env")]))
    assert not tar_path.exists()
    assert rel.releases(str(tmp_path / "app")) == [NEW, "20261124T050200Z", "20261124T050300Z"]


@pytest.mark.parametrize("name", ["/etc/cron.d/x", "static/../../x", "link"])
def test_unpack_refuses_absolute_climbing_and_link_members(tmp_path, name):
    tar_path = tmp_path / "evil.tar"
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo(name)
        if name == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(rel.Failed, match=rf"^artifact {tar_path} holds an unsafe member '{name}'; rebuild it$"):
        rel.unpack(str(tar_path), str(tmp_path / "house"))
    assert not (tmp_path / "house").exists()


def test_current_is_a_release_id_or_none(tmp_path):
    (tmp_path / "releases" / "notes").mkdir(parents=True)
    os.symlink(f"releases/{NEW}/", tmp_path / "current")  # as `ln -s releases/<id>/ current` makes it
    assert rel.current_release(str(tmp_path)) == NEW
    os.unlink(tmp_path / "current")
    os.symlink("releases/notes", tmp_path / "current")
    assert rel.current_release(str(tmp_path)) is None


def test_the_config_hash_stays_what_hosts_already_store(tmp_path):
    """Releases record it; a new formula would rebuild every release on every host once."""
    env = tmp_path / "hello.env"
    env.write_text("A=1\n", encoding="utf-8")
    missing = str(tmp_path / "missing.env")
    digest = hashlib.sha256()
    digest.update(str(env).encode() + b"\0" + hashlib.sha256(b"A=1\n").digest())
    digest.update(missing.encode() + b"\0" + b"absent")
    assert rel.sha256_files([str(env), missing]) == "sha256:" + digest.hexdigest()
