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
