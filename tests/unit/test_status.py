"""Parsing what `fab status` reads off a host."""

from pyfleet import status

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
