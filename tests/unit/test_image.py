"""pyfleet.image: the recipe hash, when a build happens, and the build steps, with stand-ins.

podman calls go to a recorder (``image.podman``), debootstrap and chroot to a
recorder of ``image.run``; the import streams a real ``tar`` of a small root file
system into a fake ``podman`` script put first on PATH, which saves its argv and
stdin. Nothing is built, imported or pulled.
"""

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from pyfleet import image
from pyfleet.errors import PyfleetError


def done(rc=0, out="", err=""):
    return subprocess.CompletedProcess([], rc, out, err)


@pytest.fixture
def no_certs(monkeypatch, tmp_path):
    """No extra CA certificates on this 'controller' (a directory of its own)."""
    monkeypatch.setattr(image, "EXTRA_CA_DIR", tmp_path / "no-ca")
    return tmp_path / "no-ca"


# -- mirrors ------------------------------------------------------------------------------------


def test_the_mirror_from_the_environment_wins_with_its_security_mirror(monkeypatch):
    monkeypatch.setenv("PYFLEET_DEBIAN_MIRROR", "http://m.example/debian")
    monkeypatch.setenv("PYFLEET_DEBIAN_SECURITY_MIRROR", "http://m.example/debian-security")
    assert image.controller_mirror() == ("http://m.example/debian", "http://m.example/debian-security")
    monkeypatch.delenv("PYFLEET_DEBIAN_SECURITY_MIRROR")
    assert image.controller_mirror() == ("http://m.example/debian", None)


def test_without_the_environment_the_controller_apt_sources_are_read(monkeypatch, tmp_path):
    monkeypatch.delenv("PYFLEET_DEBIAN_MIRROR", raising=False)
    monkeypatch.setenv("PYFLEET_DEBIAN_SECURITY_MIRROR", "http://ignored.example/")
    etc = tmp_path / "etc" / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d" / "b.sources").write_text("Types: deb\nURIs: http://deb.example/debian-security/\n")
    (etc / "sources.list.d" / "a.sources").write_text("Types: deb\nURIs: http://deb.example/debian/\n")
    (etc / "sources.list.d" / "c.list").write_text("deb http://other.example/debian bookworm main\n")
    monkeypatch.setattr(image, "Path", lambda p: tmp_path / str(p).lstrip("/"))
    assert image.controller_mirror() == ("http://deb.example/debian", "http://deb.example/debian-security")
    (etc / "sources.list").write_text("deb http://first.example/debian bookworm main\n")
    (etc / "sources.list.d" / "a.sources").unlink()
    assert image.controller_mirror() == ("http://first.example/debian", "http://deb.example/debian-security")


def test_a_controller_without_apt_sources_is_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv("PYFLEET_DEBIAN_MIRROR", raising=False)
    monkeypatch.setenv("PYFLEET_DEBIAN_MIRROR", "")  # empty counts as unset
    monkeypatch.setattr(image, "Path", lambda p: tmp_path / str(p).lstrip("/"))
    with pytest.raises(PyfleetError) as caught:
        image.controller_mirror()
    assert str(caught.value) == ("no Debian mirror found in /etc/apt/sources*; set PYFLEET_DEBIAN_MIRROR=<mirror URL>")


def test_one_line_sources_with_options_and_trailing_slashes():
    text = (
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bookworm main\n"
        "deb http://security.example/debian-security/ bookworm-security main\n"
    )
    assert image.parse_mirrors(text) == ("http://m.example/debian", "http://security.example/debian-security")
    deb822 = "Types: deb\nURIs:   http://d.example/debian/\nSuites: bookworm\n"
    assert image.parse_mirrors(deb822) == ("http://d.example/debian", None)
    both = "deb http://x.example/debian bookworm main\nURIs: http://y.example/debian\n"
    assert image.parse_mirrors(both) == ("http://y.example/debian", None)  # deb822 first


def test_sources_with_only_a_security_mirror_name_none():
    with pytest.raises(PyfleetError, match=r"^no Debian mirror found"):
        image.parse_mirrors("deb http://security.example/debian-security bookworm-security main\n")


# -- CA certificates and the recipe hash -------------------------------------------------------------


def test_extra_ca_certificates_are_the_sorted_crt_files(monkeypatch, tmp_path, no_certs):
    assert image.extra_ca_certificates() == []
    no_certs.mkdir()
    (no_certs / "b.crt").write_text("B")
    (no_certs / "a.crt").write_text("A")
    (no_certs / "readme.txt").write_text("not a cert")
    assert image.extra_ca_certificates() == [no_certs / "a.crt", no_certs / "b.crt"]
    monkeypatch.setattr(image, "EXTRA_CA_DIR", no_certs / "a.crt")  # a file, not a directory
    assert image.extra_ca_certificates() == []


def expected_hash(suite, certs=()):
    h = hashlib.sha256()
    h.update(
        f"{suite}|{image.BUILD_STEPS_VERSION}|{','.join(image.PACKAGES)}|{','.join(image.STACK_PACKAGES)}".encode()
    )
    h.update(",".join(image.DISABLED_SERVICES).encode())
    for name, data in certs:
        h.update(name.encode() + data)
    return h.hexdigest()[:12]


def test_the_recipe_hash_is_twelve_hex_digits_of_the_whole_recipe(no_certs):
    assert image.recipe_hash("bookworm") == expected_hash("bookworm")
    assert len(image.recipe_hash("bookworm")) == 12
    assert image.recipe_hash("trixie") != image.recipe_hash("bookworm")
    assert image.image_tag() == f"localhost/pyfleet-base:bookworm-{expected_hash('bookworm')}"
    assert image.image_tag("trixie") == f"localhost/pyfleet-base:trixie-{expected_hash('trixie')}"


@pytest.mark.parametrize(
    "name, value",
    [
        ("BUILD_STEPS_VERSION", "7"),
        ("STACK_PACKAGES", [*image.STACK_PACKAGES, "htop"]),
        ("DISABLED_SERVICES", ["nginx"]),
        ("PACKAGES", image.PACKAGES[:-1]),
    ],
)
def test_each_part_of_the_recipe_changes_the_hash(monkeypatch, no_certs, name, value):
    before = image.recipe_hash("bookworm")
    monkeypatch.setattr(image, name, value)
    assert image.recipe_hash("bookworm") != before
    assert image.recipe_hash("bookworm") == expected_hash("bookworm")


def test_extra_ca_certificates_go_into_the_hash_by_name_and_content(no_certs):
    no_certs.mkdir()
    (no_certs / "proxy.crt").write_bytes(b"PEM1")
    with_cert = image.recipe_hash("bookworm")
    assert with_cert == expected_hash("bookworm", [("proxy.crt", b"PEM1")])
    (no_certs / "proxy.crt").write_bytes(b"PEM2")
    assert image.recipe_hash("bookworm") == expected_hash("bookworm", [("proxy.crt", b"PEM2")]) != with_cert
    (no_certs / "proxy.crt").rename(no_certs / "other.crt")
    assert image.recipe_hash("bookworm") == expected_hash("bookworm", [("other.crt", b"PEM2")])


# -- ensure_image: build only when no image has this recipe --------------------------------------------


class Podman:
    """Records image.podman calls; ``exists`` answers `podman image exists` in turn (the last one repeats)."""

    def __init__(self, exists):
        self.exists, self.calls = list(exists), []

    def __call__(self, *args, check=True, **kwargs):
        self.calls.append((args, {"check": check, **kwargs}))
        rc = 0 if (self.exists.pop(0) if len(self.exists) > 1 else self.exists[0]) else 1
        if check and rc:  # as pyfleet.podman does
            raise PyfleetError(f"podman {args[0]} failed: no output; see podman's message")
        return done(rc)


@pytest.fixture
def builds(monkeypatch, tmp_path, no_certs):
    monkeypatch.setattr(image.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    built = []
    monkeypatch.setattr(image, "_build", lambda suite, tag, log: built.append((suite, tag, log)) or tag)
    return built


def test_an_existing_image_of_the_recipe_is_used_as_it_is(monkeypatch, builds, tmp_path):
    podman = Podman([True])
    monkeypatch.setattr(image, "podman", podman)
    tag = image.ensure_image("trixie")
    assert tag == image.image_tag("trixie")
    assert podman.calls == [(("image", "exists", tag), {"check": False})]
    assert builds == []
    assert list((tmp_path / "tmp").iterdir()) == []  # no lock taken


def test_a_missing_image_is_built_under_a_lock_per_suite(monkeypatch, builds, tmp_path):
    podman = Podman([False])
    monkeypatch.setattr(image, "podman", podman)
    said = []
    assert image.ensure_image(log=said.append) == image.image_tag("bookworm")
    assert builds == [("bookworm", image.image_tag("bookworm"), said.append)]
    assert [a for a, _ in podman.calls] == [("image", "exists", image.image_tag("bookworm"))] * 2
    assert [p.name for p in (tmp_path / "tmp").iterdir()] == ["pyfleet-image-bookworm.lock"]


def test_an_image_another_process_built_meanwhile_is_not_built_again(monkeypatch, builds):
    monkeypatch.setattr(image, "podman", Podman([False, True]))
    assert image.ensure_image("bookworm") == image.image_tag("bookworm")
    assert builds == []


def test_the_build_lock_is_exclusive(monkeypatch, builds, tmp_path):
    taken = []
    monkeypatch.setattr(image.fcntl, "flock", lambda f, op: taken.append((Path(f.name).name, op, f.mode)))
    monkeypatch.setattr(image, "podman", Podman([False]))
    image.ensure_image("trixie")
    assert taken == [("pyfleet-image-trixie.lock", image.fcntl.LOCK_EX, "w")]


def test_an_unknown_suite_names_the_known_ones(monkeypatch):
    monkeypatch.setattr(image, "podman", Podman([True]))
    with pytest.raises(PyfleetError) as caught:
        image.ensure_image("sid")
    assert str(caught.value) == "unknown Debian suite 'sid'; use one of bookworm, trixie"


# -- _build ---------------------------------------------------------------------------------------


@pytest.fixture
def build_env(monkeypatch, tmp_path):
    """_build with debootstrap found, a mirror, plenty of disk, and recorders for each step."""
    env = SimpleNamespace(ran=[], steps=[], said=[], free=10 * 1024**3, rootfs=None)
    monkeypatch.setattr(image, "ROOT", tmp_path)
    monkeypatch.setattr(image.shutil, "which", lambda name: f"/usr/sbin/{name}" if name == "debootstrap" else None)
    monkeypatch.setattr(image, "controller_mirror", lambda: ("http://m.example/debian", "http://s.example/sec"))

    def disk_usage(path):
        assert path == tmp_path / ".cache"  # the file system the build writes to
        return SimpleNamespace(free=env.free)

    monkeypatch.setattr(image.shutil, "disk_usage", disk_usage)

    def run(args, **kwargs):
        env.ran.append((args, kwargs))
        env.rootfs = Path(args[4])
        assert env.rootfs.is_dir()
        (env.rootfs / "etc").mkdir()
        return done()

    monkeypatch.setattr(image, "run", run)
    monkeypatch.setattr(image, "_customise", lambda *a: env.steps.append(("customise", *a)))
    monkeypatch.setattr(image, "_import", lambda *a: env.steps.append(("import", *a)))
    monkeypatch.setattr(image, "_remove_superseded", lambda *a: env.steps.append(("superseded", *a)))
    return env


def test_a_build_debootstraps_customises_imports_then_removes_the_superseded(build_env, tmp_path):
    assert image._build("trixie", "localhost/pyfleet-base:trixie-abc", build_env.said.append) == (
        "localhost/pyfleet-base:trixie-abc"
    )
    rootfs = build_env.rootfs
    assert rootfs.parent == tmp_path / ".cache" and rootfs.name.startswith("rootfs-trixie-")
    assert build_env.ran == [
        (
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(image.PACKAGES)}",
                "trixie",
                rootfs,
                "http://m.example/debian",
            ],
            {
                "what": "debootstrap trixie",
                "fix": "check the mirror (PYFLEET_DEBIAN_MIRROR) and free disk space",
                "timeout": 1800,
            },
        )
    ]
    assert build_env.steps == [
        ("customise", rootfs, "trixie", "http://m.example/debian", "http://s.example/sec"),
        ("import", rootfs, "localhost/pyfleet-base:trixie-abc"),
        ("superseded", "trixie", "localhost/pyfleet-base:trixie-abc", build_env.said.append),
    ]
    assert build_env.said == [
        "building base image localhost/pyfleet-base:trixie-abc with debootstrap from http://m.example/debian "
        "(about 2 minutes, once)"
    ]
    assert not rootfs.exists()  # the root file system is removed once imported


def test_a_failed_build_leaves_no_root_file_system_and_removes_no_image(build_env, monkeypatch, tmp_path):
    monkeypatch.setattr(image, "_import", lambda *a: (_ for _ in ()).throw(PyfleetError("importing failed")))
    with pytest.raises(PyfleetError, match="importing failed"):
        image._build("bookworm", "t", print)
    assert list((tmp_path / ".cache").iterdir()) == []
    assert [s[0] for s in build_env.steps] == ["customise"]


def test_a_root_file_system_that_cannot_be_removed_does_not_hide_the_build_error(build_env, monkeypatch):
    """debootstrap can leave /proc mounted in the root file system when it fails: removing it then fails too."""
    real_rmtree = image.shutil.rmtree

    def rmtree(path, ignore_errors=False):
        if not ignore_errors:
            raise OSError(16, "Device or resource busy", str(Path(path) / "proc"))
        real_rmtree(path, ignore_errors=True)

    monkeypatch.setattr(image.shutil, "rmtree", rmtree)
    monkeypatch.setattr(image, "_customise", lambda *a: (_ for _ in ()).throw(PyfleetError("debootstrap failed")))
    with pytest.raises(PyfleetError, match=r"^debootstrap failed$"):
        image._build("bookworm", "t", print)


def test_a_build_without_debootstrap_is_one_line(build_env, monkeypatch):
    monkeypatch.setattr(image.shutil, "which", lambda name: None)
    with pytest.raises(PyfleetError) as caught:
        image._build("bookworm", "t", print)
    assert str(caught.value) == "debootstrap is not installed; run ./bootstrap.sh"
    assert build_env.ran == []


@pytest.mark.parametrize("free, fails", [(2 * 1024**3 - 1, True), (2 * 1024**3, False)])
def test_a_build_needs_two_gib_free_under_the_cache(build_env, tmp_path, free, fails):
    build_env.free = free
    if fails:
        with pytest.raises(PyfleetError) as caught:
            image._build("bookworm", "t", print)
        assert str(caught.value) == (
            f"only 2047 MiB free under {tmp_path / '.cache'}; the base image needs 2 GiB: free some space"
        )
        assert build_env.ran == []
    else:
        image._build("bookworm", "t", build_env.said.append)
        assert len(build_env.ran) == 1
    assert (tmp_path / ".cache").is_dir()


def test_the_cache_directory_may_exist_already(build_env, tmp_path):
    (tmp_path / ".cache").mkdir()
    assert image._build("bookworm", "t", print) == "t"


# -- _remove_superseded ----------------------------------------------------------------------------


def test_superseded_images_are_listed_by_repository_and_tag(monkeypatch):
    calls = []

    def podman(*args, **kwargs):
        calls.append((args, kwargs))
        if args[0] == "images":
            return done(0, "localhost/pyfleet-base:bookworm-b\nlocalhost/pyfleet-base:bookworm-a\n")
        return done(0)

    monkeypatch.setattr(image, "podman", podman)
    said = []
    image._remove_superseded("bookworm", "localhost/pyfleet-base:bookworm-new", said.append)
    assert calls == [
        (("images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/pyfleet-base"), {"check": False}),
        (("rmi", "localhost/pyfleet-base:bookworm-a"), {"check": False}),
        (("rmi", "localhost/pyfleet-base:bookworm-b"), {"check": False}),
    ]
    assert said == [
        "removed the superseded base image localhost/pyfleet-base:bookworm-a",
        "removed the superseded base image localhost/pyfleet-base:bookworm-b",
    ]


# -- _customise ------------------------------------------------------------------------------------


@pytest.fixture
def rootfs(tmp_path, monkeypatch, no_certs):
    root = tmp_path / "rootfs"
    for d in ("etc/apt", "etc/ssh", "usr/local/share/ca-certificates"):
        (root / d).mkdir(parents=True)
    for key in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "ssh_host_rsa_key"):
        (root / "etc/ssh" / key).write_text("shared key")
    (root / "etc/ssh/sshd_config").write_text("Port 22\n")
    (root / "etc/machine-id").write_text("0123456789abcdef\n")
    ran = []
    monkeypatch.setattr(image, "run", lambda args, **kwargs: ran.append((args, kwargs)) or done())
    return SimpleNamespace(path=root, ran=ran)


def test_customising_writes_sources_removes_host_keys_and_configures_in_a_chroot(rootfs):
    image._customise(rootfs.path, "bookworm", "http://m.example/debian", "http://s.example/sec")
    root = rootfs.path
    assert (root / "etc/apt/sources.list").read_text() == (
        "deb http://m.example/debian bookworm main\n"
        "deb http://m.example/debian bookworm-updates main\n"
        "deb http://s.example/sec bookworm-security main\n"
    )
    assert (root / "etc/machine-id").read_text() == ""
    assert (root / "etc/hostname").read_text() == "localhost\n"
    assert sorted(p.name for p in (root / "etc/ssh").iterdir()) == ["sshd_config"]
    dropin = root / "etc/systemd/system/ssh.service.d/pyfleet-host-keys.conf"
    assert dropin.read_text() == image.SSH_HOST_KEYS_UNIT
    assert list((root / "usr/local/share/ca-certificates").iterdir()) == []
    [(args, kwargs)] = rootfs.ran
    assert args[:4] == ["chroot", root, "/bin/sh", "-c"] and len(args) == 5
    assert kwargs == {
        "what": "configuring the base image",
        "fix": "see the message; the image is rebuilt on the next fab lab.up",
    }


def _run_chroot_script(rootfs, tmp_path, failing=()):
    """Run the chroot script in sh with each command it calls replaced by a logger; (exit code, log lines).

    The loggers record their arguments, DEBIAN_FRONTEND and whether policy-rc.d
    (which keeps services from starting inside the chroot) exists at that moment;
    the ``failing`` commands exit 1.
    """
    image._customise(rootfs.path, "bookworm", "http://m.example/debian", None)
    script = rootfs.ran[0][0][4]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    policy = tmp_path / "policy-rc.d"
    for name in ("apt-get", "systemctl", "update-ca-certificates", "chmod", "rm"):
        record = f'echo "{name} $* |$DEBIAN_FRONTEND|$(test -e {policy} && echo policy)" >> {log}'
        body = f"/bin/rm -f {policy}" if name == "rm" else ""
        (bin_dir / name).write_text(f"#!/bin/sh\n{record}\n{body}\nexit {1 if name in failing else 0}\n")
        (bin_dir / name).chmod(0o755)
    script = script.replace("/usr/sbin/policy-rc.d", str(policy))
    proc = subprocess.run(["/bin/sh", "-c", script], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, capture_output=True)
    return proc.returncode, log.read_text().splitlines() if log.exists() else []


def test_the_chroot_script_installs_the_stack_with_services_kept_from_starting(rootfs, tmp_path):
    code, log = _run_chroot_script(rootfs, tmp_path)
    assert code == 0
    # Packages come from fresh lists, unattended, while policy-rc.d keeps their services from starting.
    update = next(i for i, line in enumerate(log) if line.startswith("apt-get update"))
    [install] = [i for i, line in enumerate(log) if " install " in line]
    assert update < install
    assert log[install].endswith("|noninteractive|policy")
    for package in ("nginx", "redis-server", "nftables", "python3-cryptography"):
        assert f" {package} " in log[install]
    assert "--no-install-recommends" in log[install]
    assert any(
        line.startswith("apt-get") and " upgrade" in line and line.endswith("|noninteractive|policy") for line in log
    )
    # The roles start the stack's services; sshd starts at boot; the image leaves no policy-rc.d behind.
    assert any(line.startswith("systemctl disable nginx redis-server nftables ") for line in log)
    assert any(line.startswith("systemctl enable ssh ") for line in log)
    assert log[-1].startswith(f"rm {tmp_path / 'policy-rc.d'} ")
    assert not (tmp_path / "policy-rc.d").exists()


def test_the_chroot_script_stops_at_the_first_failed_command(rootfs, tmp_path):
    code, log = _run_chroot_script(rootfs, tmp_path, failing=("update-ca-certificates",))
    assert code != 0
    assert log[-1].startswith("update-ca-certificates")
    assert not any(line.startswith("apt-get") for line in log)


def test_customising_without_a_security_mirror_copies_the_controller_ca_certificates(rootfs, no_certs):
    no_certs.mkdir()
    (no_certs / "proxy.crt").write_text("PEM")
    image._customise(rootfs.path, "trixie", "http://m.example/debian", None)
    assert (rootfs.path / "etc/apt/sources.list").read_text() == (
        "deb http://m.example/debian trixie main\ndeb http://m.example/debian trixie-updates main\n"
    )
    assert (rootfs.path / "usr/local/share/ca-certificates/proxy.crt").read_text() == "PEM"


def test_customising_a_rootfs_with_the_dropin_directory_already_there(rootfs):
    (rootfs.path / "etc/systemd/system/ssh.service.d").mkdir(parents=True)
    image._customise(rootfs.path, "trixie", "http://m.example/debian", None)
    assert (rootfs.path / image.SSH_HOST_KEYS_DROPIN).read_text() == image.SSH_HOST_KEYS_UNIT


# -- _import ---------------------------------------------------------------------------------------


@pytest.fixture
def fake_podman(tmp_path, monkeypatch):
    """A `podman` first on PATH: saves argv, stdin and CONTAINERS_CONF; fails when told to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    out = tmp_path / "podman-out"
    out.mkdir()
    script = bin_dir / "podman"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {out}/argv\n'
        f'printf "%s" "$CONTAINERS_CONF" > {out}/conf\n'
        f"cat > {out}/stdin\n"
        f"if [ -e {out}/fail ]; then cat {out}/fail >&2; exit 125; fi\n"
        "echo sha256:0123\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return out


def small_rootfs(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("localhost\n")
    return root


def test_the_root_file_system_is_streamed_into_podman_import(tmp_path, fake_podman):
    image._import(small_rootfs(tmp_path), "localhost/pyfleet-base:bookworm-abc")
    assert (fake_podman / "argv").read_text().splitlines() == [
        "import",
        "--change",
        "CMD=/sbin/init",
        "-",
        "localhost/pyfleet-base:bookworm-abc",
    ]
    assert (fake_podman / "conf").read_text() == str(image.podman_env()["CONTAINERS_CONF"])
    with tarfile.open(fileobj=io.BytesIO((fake_podman / "stdin").read_bytes())) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {".", "./etc", "./etc/hostname"}
        assert tar.extractfile(members["./etc/hostname"]).read() == b"localhost\n"
        assert members["./etc/hostname"].uname == ""  # --numeric-owner


def test_a_failed_import_is_one_line_with_podman_last_word(tmp_path, fake_podman):
    (fake_podman / "fail").write_text("Writing blob\nError: no space left on device\n")
    with pytest.raises(PyfleetError) as caught:
        image._import(small_rootfs(tmp_path), "t")
    assert str(caught.value) == (
        "importing the base image failed: Error: no space left on device; "
        "check free disk space and run fab lab.up again"
    )


def test_a_failed_tar_is_one_line(tmp_path, fake_podman):
    with pytest.raises(PyfleetError) as caught:
        image._import(tmp_path / "no-such-rootfs", "t")
    assert str(caught.value) == (
        "importing the base image failed: tar failed; check free disk space and run fab lab.up again"
    )
