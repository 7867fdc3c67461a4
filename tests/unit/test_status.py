"""What `fab status` runs on a host and how it reads the answer."""

import subprocess
from pathlib import Path

from pyfleet import inventory, status

PROBE_OUTPUT = """unit|nginx.service|active|running|Tue 2026-11-24 05:30:00 UTC
unit|pyfleet-hello@20261124T053000Z.service|active|running|Tue 2026-11-24 05:30:05 UTC
unit|pyfleet-hello@20261124T052000Z.service|inactive|dead|
unit|celery-hello-worker@io.service|failed|failed|
current|hello|20261124T053000Z
"""


def test_parse_probe():
    units, currents = status.parse_probe(PROBE_OUTPUT)
    assert [u["unit"] for u in units][:2] == ["nginx.service", "pyfleet-hello@20261124T053000Z.service"]
    assert currents == {"hello": "20261124T053000Z"}


def test_rows_show_release_and_hide_stopped_old_releases():
    rows = status.rows("web1", PROBE_OUTPUT)
    services = [r[1] for r in rows]
    assert "pyfleet-hello@20261124T052000Z" not in services
    worker = next(r for r in rows if r[1] == "celery-hello-worker@io")
    assert worker[2] == "failed" and worker[3] == "20261124T053000Z"
    app = next(r for r in rows if r[1].startswith("pyfleet-hello@"))
    assert app[3] == "20261124T053000Z" and app[2] == "active"


def test_host_without_services_says_so():
    assert status.rows("lb1", "") == [["lb1", "-", "no pyfleet services", "", ""]]


# --- each app's base_dir, not /srv/* -------------------------------------------------


def app_inventory(**hello):
    """Two apps on web1: hello (with ``hello``'s settings) and hello-async (defaults)."""
    common = {"source": {"path": "examples/sampleapp"}, "requirements": "examples/sampleapp/requirements.txt"}
    apps = [
        dict(common, name="hello", kind="wsgi", entry="sampleapp.wsgi:app", domains=["hello.test"], **hello),
        dict(common, name="hello-async", kind="asgi", entry="sampleapp.asgi:app", domains=["async.test"]),
    ]
    return inventory.Inventory(
        path=Path("inventory/test"), hosts={"web1": {"pyfleet_apps": apps}}, groups={"web": ["web1"]}
    )


def test_base_dirs_honour_the_apps_setting():
    assert status.base_dirs(app_inventory(base_dir="/opt/apps/hello")) == {
        "hello": "/opt/apps/hello",
        "hello-async": "/srv/hello-async",
    }


def run_probe(command, tmp_path):
    """Run a probe with sh as a host would, with a systemctl that lists no units."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\ntrue\n")
    (bin_dir / "systemctl").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, check=True).stdout


def test_probe_reads_current_under_each_apps_base_dir(tmp_path):
    hello = tmp_path / "opt apps" / "hello"  # a space: the paths are quoted
    (hello / "releases" / "20261124T053000Z").mkdir(parents=True)
    (hello / "current").symlink_to("releases/20261124T053000Z")
    (tmp_path / "srv" / "other").mkdir(parents=True)  # no current: no line
    output = run_probe(status.probe({"hello": str(hello), "other": str(tmp_path / "srv" / "other")}), tmp_path)
    assert status.parse_probe(output) == ([], {"hello": "20261124T053000Z"})


def test_unit_of_an_app_whose_name_contains_another_gets_its_own_release():
    currents = {"hello": "20261124T053000Z", "hello-async": "20261124T054000Z"}
    assert status.release_of("pyfleet-hello-async-worker@io.service", currents) == "20261124T054000Z"
    assert status.release_of("pyfleet-hello-worker@io.service", currents) == "20261124T053000Z"


# --- parse_probe, release_of and rows: each line the host prints, as fab status shows it --------


def test_parse_probe_reads_every_field_and_skips_malformed_lines():
    output = (
        "unit|nginx.service|active|running|Tue 2026-11-24 05:30:00 UTC\n"
        "unit|broken|active\n"  # too few fields
        "unit|a|b|c|d|e\n"  # too many
        "current|hello\n"
        "current|a|b|c\n"
        "noise\n"
        "current|shop|20261124T060000Z\n"
    )
    assert status.parse_probe(output) == (
        [{"unit": "nginx.service", "active": "active", "sub": "running", "since": "Tue 2026-11-24 05:30:00 UTC"}],
        {"shop": "20261124T060000Z"},
    )


def test_rows_of_one_host_in_unit_order_with_every_column():
    output = (
        "unit|redis-server.service|active|running|Tue 2026-11-24 05:00:00 UTC\n"
        "unit|pyfleet-hello@20261124T053000Z.service|activating|start|\n"
        "unit|celery-hello-beat.service|active|exited|Tue 2026-11-24 05:31:00 UTC\n"
        "unit|flower-x.service|inactive||\n"
        "unit|celery-hello-worker@io.service|failed|failed|\n"
        "current|hello|20261124T053000Z\n"
    )
    assert status.rows("web1", output) == [
        ["web1", "celery-hello-beat", "active", "20261124T053000Z", "Tue 2026-11-24 05:31:00 UTC"],
        ["web1", "celery-hello-worker@io", "failed", "20261124T053000Z", "-"],
        ["web1", "flower-x", "inactive", "", "-"],
        ["web1", "pyfleet-hello@20261124T053000Z", "activating (start)", "20261124T053000Z", "-"],
        ["web1", "redis-server", "active", "", "Tue 2026-11-24 05:00:00 UTC"],
    ]


def test_a_stopped_unit_with_an_instance_but_no_release_is_still_shown():
    # celery-x-worker@io of an app that is not on this host: no release, so not an old release's instance.
    rows = status.rows("w1", "unit|celery-x-worker@io.service|inactive|dead|\n")
    assert rows == [["w1", "celery-x-worker@io", "inactive (dead)", "", "-"]]
    # A stopped unit without an instance is shown too.
    assert status.rows("w1", "unit|celery-x-beat.service|inactive|dead|\ncurrent|x|20261124T053000Z\n") == [
        ["w1", "celery-x-beat", "inactive (dead)", "20261124T053000Z", "-"]
    ]


def test_release_of_a_per_release_unit_is_its_instance_only_when_it_looks_like_a_release():
    currents = {"hello": "20261124T053000Z"}
    assert status.release_of("pyfleet-hello@20261124T052000Z.service", currents) == "20261124T052000Z"
    assert status.release_of("pyfleet-hello@20261124T052000.service", currents) == "20261124T052000"
    assert status.release_of("pyfleet-hello@2026112T052000Z.service", currents) == "20261124T053000Z"
    assert status.release_of("pyfleet-hello@x20261124T052000Z.service", currents) == "20261124T053000Z"
    assert status.release_of("nginx.service", currents) == ""


def test_probe_lists_the_units_then_each_apps_current_and_ends_true():
    command = status.probe({"b": "/srv/b", "a": "/srv/a x"})
    assert command.startswith(status.UNITS_PROBE)
    assert command.endswith("true")
    assert command.index("'/srv/a x/current'") < command.index("/srv/b/current")
    assert status.probe({}) == status.UNITS_PROBE + "true"


def test_base_dirs_use_the_plan_given():
    the_plan = {"apps": [{"name": "a", "base_dir": "/opt/a"}, {"name": "b", "base_dir": "/srv/b"}]}
    assert status.base_dirs(None, the_plan) == {"a": "/opt/a", "b": "/srv/b"}


def test_release_of_prefers_the_longest_app_name_not_the_last_in_order():
    currents = {"b": "20261124T050000Z", "ab": "20261124T060000Z"}
    assert status.release_of("pyfleet-ab-worker@io.service", currents) == "20261124T060000Z"


def test_base_dirs_need_no_source_directory_on_the_controller():
    assert status.base_dirs(app_inventory(source={"path": "no/such/dir"})) == {
        "hello": "/srv/hello",
        "hello-async": "/srv/hello-async",
    }


def test_probe_reads_the_current_release_of_every_app(tmp_path):
    dirs = {}
    for app, release in (("a", "20261124T050000Z"), ("b", "20261124T060000Z")):
        base = tmp_path / app
        (base / "releases" / release).mkdir(parents=True)
        (base / "current").symlink_to(f"releases/{release}")
        dirs[app] = str(base)
    output = run_probe(status.probe(dirs), tmp_path)
    assert status.parse_probe(output)[1] == {"a": "20261124T050000Z", "b": "20261124T060000Z"}
