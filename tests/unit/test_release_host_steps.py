"""The release module's host-side steps that only a real host ran before: nginx reload and
its check through nginx, systemctl's answers, stopping units, removing a release.

systemctl and nginx are fakes (the module's ``run``); files, sockets and HTTP are real.
"""

import http.server
import os
import subprocess
import threading
from pathlib import Path
from typing import ClassVar

import pytest
from release_module import rel

ROOT = Path(__file__).resolve().parents[2]

OLD, NEW = "20261124T050000Z", "20261124T050100Z"


class Calls:
    """A fake ``run``: records argv, answers from ``answers`` (first matching prefix), else (0, "")."""

    def __init__(self, monkeypatch, answers=()):
        self.calls = []
        self.answers = list(answers)
        monkeypatch.setattr(rel, "run", self)

    def __call__(self, args, env=None, timeout=600, stdin=None):
        self.calls.append(list(args))
        for prefix, answer in self.answers:
            if list(args[: len(prefix)]) == list(prefix):
                return answer(args) if callable(answer) else answer
        return 0, ""


class Clock:
    """The module's time.monotonic and time.sleep: sleeping moves the clock, each look at it takes 1 ms."""

    def __init__(self, monkeypatch):
        self.now = 0.0
        self.sleeps = []
        monkeypatch.setattr(rel.time, "monotonic", self.monotonic)
        monkeypatch.setattr(rel.time, "sleep", self.sleep)

    def monotonic(self):
        self.now += 0.001
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


# --- nginx --------------------------------------------------------------------------------------


def test_reload_nginx_writes_checks_reloads_and_waits_for_new_workers(tmp_path, monkeypatch):
    upstream = tmp_path / "hello.upstream.conf"
    upstream.write_text("old\n", encoding="utf-8")
    calls = Calls(monkeypatch)
    generations = iter(
        [{10: "nginx: worker process"}, {10: "nginx: worker process is shutting down", 11: "nginx: worker process"}]
    )
    monkeypatch.setattr(rel, "nginx_workers", lambda: next(generations))
    old = rel.reload_nginx(str(upstream), "new\n")
    assert old == {10}  # the workers that served before the reload
    assert upstream.read_text(encoding="utf-8") == "new\n"
    assert oct(upstream.stat().st_mode & 0o777) == "0o644"
    assert calls.calls == [["nginx", "-t", "-q"], ["systemctl", "reload", "nginx"]]
    assert not (tmp_path / "hello.upstream.conf.tmp").exists()


@pytest.mark.parametrize(
    "generations",
    [
        # The new workers start while the old ones still accept, then the old ones shut down.
        [{10: "nginx: worker process"}, {10: "nginx: worker process", 11: "nginx: worker process"}],
        # The old workers shut down before the new ones run.
        [{10: "nginx: worker process is shutting down"}],
    ],
)
def test_reload_nginx_returns_once_new_workers_run_and_no_old_one_accepts(tmp_path, monkeypatch, generations):
    upstream = tmp_path / "hello.upstream.conf"
    upstream.write_text("old\n", encoding="utf-8")
    Calls(monkeypatch)
    clock = Clock(monkeypatch)
    done = {10: "nginx: worker process is shutting down", 11: "nginx: worker process"}
    # Before the reload, while it takes effect, done; never asked after that.
    looks = iter([{10: "nginx: worker process"}, *generations, done])
    monkeypatch.setattr(rel, "nginx_workers", lambda: next(looks))
    assert rel.reload_nginx(str(upstream), "new\n") == {10}
    assert next(looks, "all seen") == "all seen"
    assert len(clock.sleeps) == len(generations) and all(0 < s <= 0.1 for s in clock.sleeps)


def test_reload_nginx_waits_at_most_10_s_for_new_workers(tmp_path, monkeypatch):
    upstream = tmp_path / "hello.upstream.conf"
    upstream.write_text("old\n", encoding="utf-8")
    Calls(monkeypatch)
    clock = Clock(monkeypatch)
    monkeypatch.setattr(rel, "nginx_workers", lambda: {10: "nginx: worker process"})  # the reload never lands
    assert rel.reload_nginx(str(upstream), "new\n") == {10}
    assert 10 <= clock.now < 10.2
    assert len(clock.sleeps) > 50  # it kept looking


def test_reload_nginx_says_when_the_reload_fails(tmp_path, monkeypatch):
    upstream = tmp_path / "hello.upstream.conf"
    Calls(monkeypatch, [(["systemctl", "reload"], (1, "Job for nginx.service failed."))])
    monkeypatch.setattr(rel, "nginx_workers", dict)
    with pytest.raises(rel.Failed, match=r"^reloading nginx: Job for nginx.service failed.$"):
        rel.reload_nginx(str(upstream), "new\n")


def test_reload_nginx_puts_the_old_upstream_back_when_nginx_refuses(tmp_path, monkeypatch):
    upstream = tmp_path / "hello.upstream.conf"
    upstream.write_text("old\n", encoding="utf-8")
    calls = Calls(
        monkeypatch, [(["nginx"], (1, "nginx: the configuration file syntax is ok\nnginx: [emerg] host not found"))]
    )
    with pytest.raises(rel.Failed, match=r"nginx -t refused the new upstream: nginx: \[emerg\] host not found"):
        rel.reload_nginx(str(upstream), "new\n")
    assert upstream.read_text(encoding="utf-8") == "old\n"
    assert ["systemctl", "reload", "nginx"] not in calls.calls


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200
    seen: ClassVar[list] = []

    def do_GET(self):
        type(self).seen.append((self.path, self.headers["Host"], self.headers["User-Agent"]))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def nginx_port():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    _Health.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_check_through_nginx_asks_with_the_apps_host(nginx_port):
    _Health.status = 204
    rel.check_through_nginx({"nginx_port": nginx_port, "health_path": "/healthz", "health_host": "hello.test"})
    assert _Health.seen == [("/healthz", "hello.test", "pyfleet-health")]


def test_check_through_nginx_accepts_a_redirect(nginx_port):
    _Health.status = 302
    rel.check_through_nginx({"nginx_port": nginx_port, "health_path": "/", "health_host": "h"})


def test_check_through_nginx_refuses_an_error_after_retrying(nginx_port, monkeypatch):
    _Health.status = 502
    clock = iter(range(0, 100, 3))
    monkeypatch.setattr(rel.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(rel.time, "sleep", lambda s: None)
    with pytest.raises(rel.Failed, match=r"^health check /healthz through nginx \(Host hello.test\) failed: HTTP 502$"):
        rel.check_through_nginx({"nginx_port": nginx_port, "health_path": "/healthz", "health_host": "hello.test"})
    assert len(_Health.seen) == 3  # retried until the 10 s were up


def test_check_through_nginx_accepts_200_and_refuses_400_after_10_s_of_retries(nginx_port, monkeypatch):
    _Health.status = 200
    rel.check_through_nginx({"nginx_port": nginx_port, "health_path": "/", "health_host": "h"})
    _Health.status = 400
    clock = Clock(monkeypatch)
    with pytest.raises(rel.Failed, match=r"failed: HTTP 400$"):
        rel.check_through_nginx({"nginx_port": nginx_port, "health_path": "/", "health_host": "h"})
    assert 10 <= clock.now < 10.3
    assert 40 <= len(_Health.seen) - 1 <= 51  # every 0.2 s
    assert set(clock.sleeps) == {0.2}


def test_check_through_nginx_names_a_refused_connection(monkeypatch):
    clock = iter(range(0, 100, 6))
    monkeypatch.setattr(rel.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(rel.time, "sleep", lambda s: None)
    with pytest.raises(rel.Failed, match=r"failed: ConnectionRefusedError: "):
        rel.check_through_nginx({"nginx_port": 1, "health_path": "/healthz", "health_host": "h"})


# --- systemctl ----------------------------------------------------------------------------------


def test_instances_reads_the_template_units_instances(monkeypatch):
    listing = (
        f"pyfleet-hello@{OLD}.service loaded active running pyfleet app hello release {OLD}\n"
        f"pyfleet-hello@{NEW}.service loaded failed failed pyfleet app hello release {NEW}\n"
        "pyfleet-hello-worker@default.service loaded active running other\n"
        "junk\n"
    )
    calls = Calls(monkeypatch, [(["systemctl", "list-units"], (0, listing))])
    assert rel.instances("pyfleet-hello") == {
        f"pyfleet-hello@{OLD}.service": "active",
        f"pyfleet-hello@{NEW}.service": "failed",
    }
    assert calls.calls == [
        ["systemctl", "list-units", "--all", "--plain", "--no-legend", "--full", "pyfleet-hello@*.service"]
    ]


def test_unit_state_parses_systemctl_show(monkeypatch):
    calls = Calls(
        monkeypatch,
        [(["systemctl", "show"], (0, "ActiveState=failed\nSubState=failed\nNRestarts=3\nResult=exit-code\n"))],
    )
    assert rel.unit_state("u.service") == {
        "ActiveState": "failed",
        "SubState": "failed",
        "NRestarts": "3",
        "Result": "exit-code",
    }
    assert calls.calls == [["systemctl", "show", "-p", "ActiveState,SubState,NRestarts,Result", "u.service"]]


def test_stop_units_stops_without_blocking_and_waits_for_the_main_process(monkeypatch):
    states = iter(["ActiveState=deactivating\nMainPID=42", "ActiveState=inactive\nMainPID=0"])
    calls = Calls(monkeypatch, [(["systemctl", "show"], lambda args: (0, next(states)))])
    monkeypatch.setattr(rel.time, "sleep", lambda s: None)
    rel.stop_units(["a.service"], 30)
    assert calls.calls == [
        ["systemctl", "stop", "--no-block", "a.service"],
        ["systemctl", "show", "-p", "ActiveState,MainPID", "a.service"],
        ["systemctl", "show", "-p", "ActiveState,MainPID", "a.service"],
    ]
    calls.calls.clear()
    rel.stop_units([], 30)
    assert calls.calls == []


@pytest.mark.parametrize(
    "show",
    [
        "ActiveState=inactive\nMainPID=42",
        "ActiveState=failed\nMainPID=42",
        # The main process is gone; systemd may still wait for leftovers it cannot see go.
        "ActiveState=deactivating\nMainPID=0",
        "ActiveState=deactivating",  # no main process at all
    ],
)
def test_stop_units_is_done_when_the_unit_stopped_or_its_main_process_is_gone(monkeypatch, show):
    calls = Calls(monkeypatch, [(["systemctl", "show"], (0, show))])
    clock = Clock(monkeypatch)
    rel.stop_units(["a.service"], 30)
    assert [c[1] for c in calls.calls] == ["stop", "show"]
    assert clock.sleeps == []


def test_stop_units_looks_every_0_2_s_until_the_timeout(monkeypatch):
    calls = Calls(monkeypatch, [(["systemctl", "show"], (0, "ActiveState=deactivating\nMainPID=42"))])
    clock = Clock(monkeypatch)
    rel.stop_units(["a.service", "b.service"], 2)
    assert 2 <= clock.now < 2.3
    assert set(clock.sleeps) == {0.2}
    shown = [c[-1] for c in calls.calls if c[1] == "show"]
    assert shown[:4] == ["a.service", "b.service", "a.service", "b.service"]
    assert 18 <= len(shown) <= 22


def test_stop_units_gives_up_after_the_timeout(monkeypatch):
    calls = Calls(monkeypatch, [(["systemctl", "show"], (0, "ActiveState=deactivating\nMainPID=42"))])
    clock = iter(range(0, 1000, 4))
    monkeypatch.setattr(rel.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(rel.time, "sleep", lambda s: None)
    rel.stop_units(["a.service"], 10)
    assert 2 <= len([c for c in calls.calls if c[1] == "show"]) <= 3


def test_wait_gone_until_the_pids_are_gone():
    assert rel.wait_gone({os.getpid()}, 0.2) is False  # this process does not go
    assert rel.wait_gone({2**22 + 12345}, 5) is True


def test_wait_gone_looks_every_0_1_s_until_the_timeout(monkeypatch):
    clock = Clock(monkeypatch)
    assert rel.wait_gone({os.getpid()}, 3) is False
    assert 3 <= clock.now < 3.2
    assert set(clock.sleeps) == {0.1}


def test_nginx_workers_are_the_processes_titled_so(tmp_path):
    """Real processes named as nginx names its own (a title that is not UTF-8 included)."""
    titles = [
        b"nginx: worker process",
        b"nginx: worker process is shutting down",
        b"nginx: worker process \xff",
        b"nginx: master process /usr/sbin/nginx",
        b"nginx: cache manager process",
    ]
    procs = [subprocess.Popen([title, "60"], executable="/bin/sleep") for title in titles]
    try:
        workers = rel.nginx_workers()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    ours = {pid: title for pid, title in workers.items() if pid in {p.pid for p in procs}}
    assert ours == {
        procs[0].pid: "nginx: worker process 60",
        procs[1].pid: "nginx: worker process is shutting down 60",
        procs[2].pid: "nginx: worker process \ufffd 60",
    }
    assert all(title.startswith("nginx: worker process") for title in workers.values())


def test_enabled_instances_are_the_links_systemctl_enable_made(tmp_path, monkeypatch):
    assert rel.SYSTEMD_DIR == "/etc/systemd/system"
    monkeypatch.setattr(rel, "SYSTEMD_DIR", str(tmp_path))
    assert rel.enabled_instances("pyfleet-hello") == []  # nothing enabled yet
    wants = tmp_path / "multi-user.target.wants"
    wants.mkdir()
    for name in (
        f"pyfleet-hello@{NEW}.service",
        f"pyfleet-hello@{OLD}.service",
        "pyfleet-hello-worker@default.service",
        f"pyfleet-hello@{OLD}.socket",
        "nginx.service",
    ):
        (wants / name).symlink_to(tmp_path / name.replace(f"@{OLD}", "@").replace(f"@{NEW}", "@"))
    assert rel.enabled_instances("pyfleet-hello") == [f"pyfleet-hello@{OLD}.service", f"pyfleet-hello@{NEW}.service"]
    # The app's unit template is enabled into that directory.
    template = ROOT / "roles" / "app_server" / "templates" / "etc" / "systemd" / "system" / "app@.service.j2"
    assert "\nWantedBy=multi-user.target\n" in template.read_text(encoding="utf-8")


# --- files --------------------------------------------------------------------------------------


def test_write_text_replaces_atomically_and_none_removes(tmp_path):
    path = tmp_path / "f"
    rel.write_text(str(path), "one\n")
    assert rel.read_text(str(path)) == "one\n"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    rel.write_text(str(path), None)
    assert not path.exists()
    rel.write_text(str(path), None)  # already gone: fine
    assert rel.read_text(str(path)) is None


# --- absent -------------------------------------------------------------------------------------


def make_release(base, release):
    path = base / "releases" / release
    (path / "venv").mkdir(parents=True)
    (path / rel.META).write_text("{}", encoding="utf-8")


def absent(base, release, **extra):
    return rel.action_absent({"base_dir": str(base), "release": release, "unit": "pyfleet-hello", **extra})


def test_absent_stops_disables_and_removes_the_release(tmp_path, monkeypatch):
    make_release(tmp_path, OLD)
    make_release(tmp_path, NEW)
    rel.switch_current(str(tmp_path), NEW)
    calls = Calls(monkeypatch, [(["systemctl", "show"], (0, "ActiveState=inactive\nMainPID=0"))])
    assert absent(tmp_path, OLD) == {"changed": True, "release": OLD}
    assert not (tmp_path / "releases" / OLD).exists()
    unit = f"pyfleet-hello@{OLD}.service"
    assert ["systemctl", "stop", "--no-block", unit] in calls.calls
    assert calls.calls[-1] == ["systemctl", "disable", "--quiet", unit]
    assert absent(tmp_path, OLD) == {"changed": False, "release": OLD}


def test_absent_never_removes_current_or_a_bad_id(tmp_path, monkeypatch):
    make_release(tmp_path, NEW)
    rel.switch_current(str(tmp_path), NEW)
    calls = Calls(monkeypatch)
    with pytest.raises(rel.Failed, match=f"release {NEW} is current; activate another release first"):
        absent(tmp_path, NEW)
    with pytest.raises(rel.Failed, match=r"release id '../x' is not a UTC stamp"):
        absent(tmp_path, "../x")
    with pytest.raises(rel.Failed, match=r"release id None is not a UTC stamp"):
        absent(tmp_path, None)
    assert (tmp_path / "releases" / NEW).exists()
    assert calls.calls == []


def test_absent_in_check_mode_and_without_a_unit(tmp_path, monkeypatch):
    make_release(tmp_path, OLD)
    calls = Calls(monkeypatch)
    assert absent(tmp_path, OLD, _check_mode=True) == {"changed": True, "release": OLD}
    assert (tmp_path / "releases" / OLD).exists()
    assert rel.action_absent({"base_dir": str(tmp_path), "release": OLD, "unit": None}) == {
        "changed": True,
        "release": OLD,
    }
    assert not (tmp_path / "releases" / OLD).exists()
    assert calls.calls == []


# --- the worker hosts' gate and the bookkeeping around a switch ---------------------------------


def test_worker_gate_runs_exactly_this_command_with_the_health_timeout(tmp_path, monkeypatch):
    from test_release_module import worker_params

    make_release(tmp_path, OLD)
    make_release(tmp_path, NEW)
    rel.switch_current(str(tmp_path), OLD)
    seen = []

    def fake_run(args, env=None, timeout=600, stdin=None):
        seen.append((list(args), timeout, stdin))
        return 0, ""

    monkeypatch.setattr(rel, "run", fake_run)
    result = rel.action_activate(worker_params(tmp_path, release=NEW, health_timeout=7, celery_app="proj.tasks:app"))
    release_dir = str(tmp_path / "releases" / NEW)
    assert seen == [
        (
            [
                "systemd-run",
                "--quiet",
                "--wait",
                "--pipe",
                "--collect",
                "--service-type=exec",
                f"--unit=pyfleet-gate-hello-{NEW.lower()}.service",
                "--property=User=app_hello",
                "--property=Group=app_hello",
                f"--property=WorkingDirectory={release_dir}",
                "--property=EnvironmentFile=-/etc/pyfleet/celery/hello.env",
                f"{release_dir}/venv/bin/python",
                "-c",
                "import proj.tasks; proj.tasks.app",
            ],
            7,
            rel.subprocess.DEVNULL,
        )
    ]
    assert set(result) == {"changed", "release", "previous", "pruned", "seconds"}
    assert (result["changed"], result["release"], result["previous"], result["pruned"]) == (True, NEW, OLD, [])
    assert list(result["seconds"]) == ["gate"]
    assert rel.current_release(str(tmp_path)) == NEW


def test_worker_switch_without_an_env_file_and_pruning_reports_a_change(tmp_path, monkeypatch):
    from test_release_module import worker_params

    ids = [f"20261124T05{m:02d}00Z" for m in range(7)]
    for release in ids:
        make_release(tmp_path, release)
    rel.switch_current(str(tmp_path), ids[-1])
    calls = Calls(monkeypatch)
    result = rel.action_activate(worker_params(tmp_path, release=ids[-1], env_file=None))
    assert calls.calls == []  # the release it serves: no gate
    assert result == {"changed": True, "release": ids[-1], "previous": ids[-1], "pruned": ids[:2], "seconds": {}}
    make_release(tmp_path, "20261124T060000Z")
    rel.action_activate(worker_params(tmp_path, release="20261124T060000Z", env_file=None))
    assert not [a for a in calls.calls[0] if a.startswith("--property=EnvironmentFile")]


def test_a_refused_first_release_says_nothing_was_serving(tmp_path, monkeypatch):
    from test_release_module import worker_params

    make_release(tmp_path, NEW)
    Calls(monkeypatch, [(["systemd-run"], (1, "ModuleNotFoundError: No module named 'proj'"))])
    with pytest.raises(
        rel.Failed,
        match=rf"^release {NEW} refused: its venv does not import proj.tasks:app: ModuleNotFoundError: "
        r"No module named 'proj' \(nothing was serving before, release removed\)$",
    ):
        rel.action_activate(worker_params(tmp_path, release=NEW, celery_app="proj.tasks:app", remove_on_failure=True))
    assert rel.releases(str(tmp_path)) == []


def test_switch_current_works_from_any_directory_and_over_a_stale_temporary_link(tmp_path, monkeypatch):
    make_release(tmp_path, OLD)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    os.symlink("releases/none", tmp_path / f".current.{os.getpid()}")  # left by a killed run
    rel.switch_current(str(tmp_path), OLD)
    assert os.readlink(tmp_path / "current") == f"releases/{OLD}"
    assert sorted(os.listdir(tmp_path)) == ["current", "elsewhere", "releases"]
    assert os.listdir(elsewhere) == []


def test_rollback_target_names_the_releases_there(tmp_path):
    make_release(tmp_path, OLD)
    rel.switch_current(str(tmp_path), OLD)
    with pytest.raises(rel.Failed, match=rf"^no release older than {OLD} to roll back to; releases: {OLD}$"):
        rel.target_release(str(tmp_path), "previous", OLD)
    make_release(tmp_path, NEW)
    with pytest.raises(rel.Failed, match=rf"^no release older than {OLD} to roll back to; releases: {OLD}, {NEW}$"):
        rel.target_release(str(tmp_path), "previous", OLD)
    (tmp_path / "releases" / NEW / rel.META).unlink()
    (tmp_path / "releases" / OLD / rel.META).unlink()
    with pytest.raises(rel.Failed, match=r"; releases: none$"):
        rel.target_release(str(tmp_path), "previous", OLD)
    with pytest.raises(rel.Failed, match=r"^release id '' is not a UTC stamp"):
        rel.target_release(str(tmp_path), "", OLD)


def test_prune_without_a_releases_directory_and_keeping_shipped_tars(tmp_path):
    (tmp_path / "wheelhouse" / "old").mkdir(parents=True)
    (tmp_path / "wheelhouse" / "next.tar").write_text("shipped")
    assert rel.prune(str(tmp_path), 5, set()) == []
    assert sorted(os.listdir(tmp_path / "wheelhouse")) == ["next.tar"]
    # A half-built release (no metadata) of an interrupted build goes; a kept one stays.
    make_release(tmp_path, OLD)
    (tmp_path / "releases" / NEW).mkdir()
    (tmp_path / "releases" / "notes").mkdir()
    rel.prune(str(tmp_path), 5, {OLD})
    assert sorted(os.listdir(tmp_path / "releases")) == [OLD, "notes"]


# --- the health gate's reasons ------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        {"ActiveState": "inactive", "NRestarts": "0"},
        {"ActiveState": "failed", "NRestarts": "0"},
        {"ActiveState": "activating", "NRestarts": "1"},  # crashed once, systemd restarted it
    ],
)
def test_wait_healthy_stops_at_once_when_the_instance_is_not_running(tmp_path, monkeypatch, state):
    asked = []
    monkeypatch.setattr(rel, "unit_state", lambda unit: asked.append(unit) or state)
    monkeypatch.setattr(rel, "journal_reason", lambda unit: f"reason of {unit}")
    with pytest.raises(rel.Failed, match=r"^x@1.service stopped: reason of x@1.service$"):
        rel.wait_healthy("x@1.service", str(tmp_path / "none.sock"), "/healthz", "h", 2)
    assert asked == ["x@1.service"]  # the first look, not at the deadline


def test_wait_healthy_waits_for_the_socket_and_names_the_last_error(tmp_path, monkeypatch):
    sock = tmp_path / "app.sock"
    sock.write_text("not a socket")
    clock = iter(range(100))
    monkeypatch.setattr(rel.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(rel.time, "sleep", lambda s: None)
    monkeypatch.setattr(rel, "unit_state", lambda unit: {"ActiveState": "active"})
    monkeypatch.setattr(rel, "journal_reason", lambda unit: "booting")
    with pytest.raises(
        rel.Failed,
        match=rf"^health check /healthz over {sock} got no answer within 3 s \(ConnectionRefusedError: .*\); journal: booting$",
    ):
        rel.wait_healthy("x@1.service", str(sock), "/healthz", "h", 3)


def test_journal_reason_reads_the_instances_own_lines_then_the_units(monkeypatch):
    calls = Calls(monkeypatch, [(["journalctl", "--no-pager", "-o", "cat", "-n", "80"], (0, ""))])
    calls.answers.append((["journalctl"], (0, "Started x.\nx.service: Main process exited, code=exited")))
    assert rel.journal_reason("x@1.service") == "x.service: Main process exited, code=exited"
    assert calls.calls == [
        ["journalctl", "--no-pager", "-o", "cat", "-n", "80", "_SYSTEMD_UNIT=x@1.service"],
        ["journalctl", "--no-pager", "-o", "cat", "-n", "10", "-u", "x@1.service"],
    ]


def test_journal_reason_without_an_exception_is_the_instances_last_line(monkeypatch):
    calls = Calls(monkeypatch, [(["journalctl", "--no-pager", "-o", "cat", "-n", "80"], (0, "Booting\nlistening\n"))])
    assert rel.journal_reason("x@1.service") == "listening"
    assert len(calls.calls) == 1  # the unit's own lines are not needed


def test_journal_reason_prefers_the_apps_exception_over_gunicorns_own(monkeypatch):
    journal = "KeyError: 'SECRET_KEY'\ngunicorn.errors.AppImportError: Application object must be callable.\n"
    Calls(monkeypatch, [(["journalctl"], (0, journal))])
    assert rel.journal_reason("x@1.service") == "KeyError: 'SECRET_KEY'"


def test_journal_reason_keeps_the_last_exception_short(monkeypatch):
    long = "ValueError: " + "x" * 400
    Calls(monkeypatch, [(["journalctl"], (0, f"KeyError: 'a'\n  {long}\ngunicorn.errors.HaltServer: boot\nbye"))])
    assert rel.journal_reason("x@1.service") == long[:300]


# --- info: what the controller plans a deploy from ----------------------------------------------


def test_info_reports_the_host_and_each_apps_releases_and_unpacked_wheelhouses(tmp_path):
    import platform

    app = tmp_path / "hello"
    (app / "releases" / OLD).mkdir(parents=True)
    (app / "releases" / OLD / rel.META).write_text('{"artifact_hash": "sha256:one"}', encoding="utf-8")
    for house, manifest in (("aaaa", True), ("bbbb", False)):
        (app / "wheelhouse" / house).mkdir(parents=True)
        if manifest:
            (app / "wheelhouse" / house / "MANIFEST.json").write_text("{}", encoding="utf-8")
    (app / "wheelhouse" / "cccc.tar").write_text("shipped")
    rel.switch_current(str(app), OLD)
    info = rel.action_info({"apps": {"hello": str(app), "new": str(tmp_path / "new")}})
    assert info["apps"] == {
        "hello": {
            "current": OLD,
            "releases": [OLD],
            "wheelhouses": ["aaaa"],  # unpacked and complete only
            "artifact_hash": "sha256:one",
            "release_hashes": {OLD: "sha256:one"},
            "config_current": None,  # not asked (no config_files_of)
        },
        "new": {
            "current": None,
            "releases": [],
            "wheelhouses": [],
            "artifact_hash": None,
            "release_hashes": {},
            "config_current": None,
        },
    }
    assert info["changed"] is False
    assert info["python"] == platform.python_version()
    assert info["arch"] == platform.machine()
    assert info["cpus"] == (os.cpu_count() or 1)
    assert info["glibc"] == os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    assert rel.action_info({"apps": None})["apps"] == {}


def test_a_worker_switch_keeps_the_release_that_served_until_then(tmp_path, monkeypatch):
    from test_release_module import worker_params

    ids = [f"20261124T05{m:02d}00Z" for m in range(6)]
    for release in ids:
        make_release(tmp_path, release)
    rel.switch_current(str(tmp_path), ids[0])  # rolled back to the oldest
    Calls(monkeypatch)
    result = rel.action_activate(worker_params(tmp_path, release=ids[-1], env_file=None, keep_releases=3))
    assert (result["previous"], result["pruned"]) == (ids[0], ids[1:3])
    assert rel.releases(str(tmp_path)) == [ids[0], *ids[3:]]
