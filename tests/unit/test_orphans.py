"""pyfleet.orphans: what the last play of site.yml removes and `fab status` marks."""

import copy
import subprocess

import pytest

from pyfleet import inventory, orphans, plan as fleet_plan, status
from pyfleet.shell import ROOT


@pytest.fixture(scope="module")
def lab():
    inv = inventory.load(ROOT / "inventory" / "lab")
    return inv, fleet_plan.from_inventory(inv, check_paths=False)


def regrouped(inv, **changes):
    """The lab's groups with hosts moved: changes = {group: [hosts]}."""
    groups = copy.deepcopy(inv.groups)
    groups.update(changes)
    return groups


def test_the_plan_says_what_each_lab_host_keeps(lab):
    _, plan = lab
    web1, worker1, worker2 = (plan["hosts"][h]["wanted"] for h in ("web1", "worker1", "worker2"))
    assert web1["units"] == ["pyfleet-hello-async@.service", "pyfleet-hello@.service"]
    assert "/etc/nginx/conf.d/pyfleet-app-hello-async.conf" in web1["nginx_files"] and web1["nginx"]
    assert worker1["units"] == [
        "pyfleet-hello-worker@.service",
        "pyfleet-hello-worker@default.service.d",
        "pyfleet-hello-worker@io.service.d",
    ]
    assert "pyfleet-hello-beat.service" in worker2["units"] and "pyfleet-hello-flower.service" in worker2["units"]
    assert not worker1["nginx"] and worker1["apps"] == ["hello"]
    assert plan["hosts"]["broker1"]["wanted"]["services"] == ["redis-server.service"]
    assert plan["hosts"]["lb1"]["wanted"]["nginx_files"][0] == orphans.LB_CONF


def test_a_host_out_of_every_group_keeps_nothing(lab):
    inv, plan = lab
    groups = regrouped(inv, web=["web1"], spare=["web2"])
    keep = orphans.wanted(plan, groups, "web2")
    assert (keep["nginx"], keep["nginx_files"], keep["services"]) == (False, [], [])


def test_a_switched_broker_kind_keeps_the_other_service(lab):
    inv, plan = lab
    switched = dict(plan, broker_kind="rabbitmq")
    assert orphans.wanted(switched, inv.groups, "broker1")["services"] == ["epmd.socket", "rabbitmq-server.service"]
    assert orphans.wanted(plan, regrouped(inv, brokers=[]), "broker1")["services"] == []


# What PROBE prints on web2 after it left group web, with an earlier removal's record.
WEB2 = """unitfile|pyfleet-hello@.service
unitfile|pyfleet-hello-async@.service
unitfile|pyfleet-bad name@.service
unitline|/etc/systemd/system/pyfleet-hello@.service:User=app_hello
unitline|/etc/systemd/system/pyfleet-hello@.service:WorkingDirectory=/srv/hello/releases/%i
nginx|/etc/nginx/conf.d/pyfleet.conf
nginx|/etc/nginx/conf.d/pyfleet-app-hello.conf
nginx|/etc/nginx/pyfleet/hello.upstream.conf
nginx-enabled|
retired|hello-async|{"base_dir": "/srv/hello-async", "user": "app_hello_async"}
retired|broken|not json
"""

NOTHING_KEPT = {"units": [], "nginx_files": [], "nginx": False, "services": [], "apps": []}


def test_a_host_out_of_group_web_loses_units_nginx_files_and_nginx_itself():
    found = orphans.parse_probe(WEB2)
    assert "pyfleet-bad name@.service" not in found["units"]  # not a plain unit name: never in a glob
    gone = orphans.orphans(found, NOTHING_KEPT)
    assert gone["units"] == ["pyfleet-hello-async@.service", "pyfleet-hello@.service"]
    assert gone["nginx_files"] == [
        "/etc/nginx/conf.d/pyfleet-app-hello.conf",
        "/etc/nginx/conf.d/pyfleet.conf",
        "/etc/nginx/pyfleet/hello.upstream.conf",
    ]
    assert gone["stop_nginx"]
    assert gone["apps"] == {
        "hello": {"user": "app_hello", "base_dir": "/srv/hello"},
        "hello-async": {"user": "app_hello_async", "base_dir": "/srv/hello-async"},
    }


def test_nginx_keeps_running_for_a_site_that_is_not_pyfleets():
    found = orphans.parse_probe(WEB2 + "nginx-other|intranet.conf\n")
    assert not orphans.orphans(found, NOTHING_KEPT)["stop_nginx"]


def test_a_kept_app_keeps_its_data_and_files():
    keep = {
        "units": ["pyfleet-hello@.service"],
        "nginx_files": ["/etc/nginx/conf.d/pyfleet-app-hello.conf", "/etc/nginx/conf.d/pyfleet.conf"],
        "nginx": True,
        "services": [],
        "apps": ["hello"],
    }
    gone = orphans.orphans(orphans.parse_probe(WEB2), keep)
    assert gone["units"] == ["pyfleet-hello-async@.service"]
    assert gone["nginx_files"] == ["/etc/nginx/pyfleet/hello.upstream.conf"]
    assert not gone["stop_nginx"]
    assert list(gone["apps"]) == ["hello-async"]


def test_a_converged_host_has_nothing_to_remove(lab):
    _, plan = lab
    keep = plan["hosts"]["worker1"]["wanted"]
    probe = "".join(f"unitfile|{u}\n" for u in keep["units"])
    gone = orphans.orphans(orphans.parse_probe(probe), keep)
    assert not orphans.anything(gone) and not orphans.anything(gone, purge=True)


def test_a_dropped_worker_type_and_broker_go():
    probe = "unitfile|pyfleet-hello-worker@.service\nunitfile|pyfleet-hello-worker@io.service.d\nservice|redis-server.service\n"
    keep = dict(NOTHING_KEPT, units=["pyfleet-hello-worker@.service"], apps=["hello"])
    gone = orphans.orphans(orphans.parse_probe(probe), keep)
    assert (gone["units"], gone["services"], gone["apps"]) == (
        ["pyfleet-hello-worker@io.service.d"],
        ["redis-server.service"],
        {},
    )
    script = orphans.removal_script(gone)
    assert "systemctl disable --now pyfleet-hello-worker@io.service " in script
    assert "systemctl disable --now redis-server.service" in script
    assert "/var/lib/redis" not in script  # broker data stays


def test_a_broker_switched_back_stops_rabbitmq_and_its_port_mapper():
    probe = "service|epmd.socket\nservice|rabbitmq-server.service\nservice|redis-server.service\n"
    keep = dict(NOTHING_KEPT, services=["redis-server.service"])
    gone = orphans.orphans(orphans.parse_probe(probe), keep)
    assert gone["services"] == ["epmd.socket", "rabbitmq-server.service"]
    script = orphans.removal_script(gone)
    # The socket and the epmd it started both stop; their pyfleet drop-ins go.
    assert "systemctl disable --now epmd.socket epmd.service" in script
    assert "rm -rf /etc/systemd/system/epmd.socket.d" in script
    assert "systemctl disable --now rabbitmq-server.service 2>" in script
    assert "/var/lib/rabbitmq" not in script  # broker data stays
    # The probe looks for every broker unit's drop-in.
    assert "epmd.socket rabbitmq-server.service redis-server.service" in orphans.PROBE


def test_app_data_is_recorded_and_kept_unless_purged():
    gone = orphans.orphans(orphans.parse_probe(WEB2), NOTHING_KEPT)
    kept = orphans.removal_script(gone, purge=False)
    assert "userdel" not in kept and "/srv/hello " not in kept
    assert "/var/lib/pyfleet/retired/hello\n" in kept.replace("'", "")
    said = orphans.describe(gone)
    assert "kept app hello data (/srv/hello, user app_hello; --purge removes it)" in said
    purged = orphans.removal_script(gone, purge=True)
    assert "rm -rf /etc/pyfleet/apps/hello.env /etc/pyfleet/celery/hello.env /run/hello /srv/hello\n" in purged
    assert "userdel app_hello_async" in purged
    assert "app hello data (/srv/hello, user app_hello)" in orphans.describe(gone, purge=True)


def test_only_records_left_is_work_for_a_purge_alone():
    found = orphans.parse_probe('retired|old|{"base_dir": "/srv/old", "user": "app_old"}\n')
    gone = orphans.orphans(found, NOTHING_KEPT)
    assert not orphans.anything(gone) and orphans.anything(gone, purge=True)


def test_units_stop_before_their_files_go_and_nginx_is_validated_before_it_reloads():
    gone = orphans.orphans(orphans.parse_probe(WEB2), dict(NOTHING_KEPT, nginx=True))
    script = orphans.removal_script(gone).splitlines()
    stop = script.index("systemctl stop 'pyfleet-hello@*.service' || true")
    assert script[stop + 1] == "rm -f /etc/systemd/system/*.wants/pyfleet-hello@*.service"
    assert script[stop + 2] == "rm -rf /etc/systemd/system/pyfleet-hello@.service"
    assert script.index("systemctl daemon-reload && systemctl reset-failed") > stop
    reload = next(line for line in script if "systemctl reload nginx" in line)
    assert "nginx -t -q && systemctl reload nginx" in reload
    assert "systemctl disable --now nginx.service" not in script


@pytest.mark.parametrize("purge", [False, True])
def test_the_removal_script_is_valid_shell(purge):
    gone = orphans.orphans(orphans.parse_probe(WEB2), NOTHING_KEPT)
    for text in (orphans.removal_script(gone, purge), orphans.PROBE):
        proc = subprocess.run(["sh", "-n"], input=text, text=True, capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr


def test_the_probe_finds_unit_files_on_a_real_directory(tmp_path):
    units = tmp_path / "system"
    (units / "pyfleet-hello-worker@io.service.d").mkdir(parents=True)
    (units / "pyfleet-hello@.service").write_text(
        "[Service]\nUser=app_hello\nWorkingDirectory=/srv/hello/releases/%i\n"
    )
    (units / "ssh.service").write_text("")
    probe = orphans.PROBE.replace(orphans.UNIT_DIR, str(units)).replace("/etc/nginx", str(tmp_path / "nginx"))
    probe = probe.replace(orphans.RETIRED_DIR, str(tmp_path / "retired"))
    out = subprocess.run(["sh", "-c", probe], text=True, capture_output=True, check=True).stdout
    found = orphans.parse_probe(out)
    assert sorted(found["units"]) == ["pyfleet-hello-worker@io.service.d", "pyfleet-hello@.service"]
    assert found["unit_lines"]["pyfleet-hello@.service"] == {
        "User": "app_hello",
        "WorkingDirectory": "/srv/hello/releases/%i",
    }


@pytest.mark.parametrize(
    "unit, app",
    [
        ("pyfleet-hello@.service", "hello"),
        ("pyfleet-hello-async@.service", "hello-async"),
        ("pyfleet-hello-worker@.service", "hello"),
        ("pyfleet-hello-worker@io.service.d", "hello"),
        ("pyfleet-hello-beat.service", "hello"),
        ("pyfleet-shop-flower.service", "shop"),
        ("ssh.service", None),
    ],
)
def test_the_app_of_a_unit(unit, app):
    assert orphans.app_of_unit(unit) == app


def test_status_marks_what_the_inventory_no_longer_names(lab):
    _, plan = lab
    worker1 = (
        "unitfile|pyfleet-hello-worker@.service\nunitfile|pyfleet-hello-worker@gpu.service.d\n"
        "unitfile|pyfleet-hello-worker@pdf.service.d\n"
    )
    outputs = {"web2": (0, WEB2), "worker1": (0, worker1)}
    lines = status.orphan_lines(["web2", "worker1"], outputs, plan)
    # web2 still serves both apps in the lab's plan: nothing of it is orphaned.
    # One line per host, its orphans separated by "; ".
    assert lines == [
        "orphaned on worker1 (the inventory no longer names it; fab site removes it): "
        "unit pyfleet-hello-worker@gpu.service.d; unit pyfleet-hello-worker@pdf.service.d"
    ]


RETIRED_SHOP = {
    "units": ["pyfleet-shop@.service", "pyfleet-shop-beat.service", "pyfleet-shop-worker@reports.service.d"],
    "nginx_files": ["/etc/nginx/conf.d/pyfleet-app-shop.conf", "/etc/nginx/pyfleet/shop.upstream.conf"],
    "services": ["redis-server.service"],
    "stop_nginx": True,
    "apps": {"shop": {"user": "app_shop", "base_dir": "/srv/shop"}, "blog": {"user": "app_blog", "base_dir": None}},
}
REMOVE_SHOP = """set -e
systemctl stop 'pyfleet-shop@*.service' || true
rm -f /etc/systemd/system/*.wants/pyfleet-shop@*.service
rm -rf /etc/systemd/system/pyfleet-shop@.service
systemctl disable --now pyfleet-shop-beat.service 2>/dev/null || true
rm -rf /etc/systemd/system/pyfleet-shop-beat.service
systemctl disable --now pyfleet-shop-worker@reports.service 2>/dev/null || true
rm -rf /etc/systemd/system/pyfleet-shop-worker@reports.service.d
systemctl disable --now redis-server.service 2>/dev/null || true
rm -rf /etc/systemd/system/redis-server.service.d
systemctl daemon-reload && systemctl reset-failed
rm -f /etc/nginx/conf.d/pyfleet-app-shop.conf /etc/nginx/pyfleet/shop.upstream.conf
systemctl disable --now nginx.service
install -d -m 0700 /var/lib/pyfleet/retired
"""


def test_the_whole_removal_script_of_a_host_that_serves_nothing_any_more():
    """Units stopped and disabled, then their files, the broker's drop-in, nginx; app data recorded, or purged."""
    assert orphans.removal_script(RETIRED_SHOP) == REMOVE_SHOP + (
        """printf '%s' '{"base_dir": null, "user": "app_blog"}' > /var/lib/pyfleet/retired/blog\n"""
        """printf '%s' '{"base_dir": "/srv/shop", "user": "app_shop"}' > /var/lib/pyfleet/retired/shop\n"""
    )
    assert orphans.removal_script(RETIRED_SHOP, purge=True) == REMOVE_SHOP + (
        "rm -rf /etc/pyfleet/apps/blog.env /etc/pyfleet/celery/blog.env /run/blog\n"
        "if id -u app_blog >/dev/null 2>&1; then userdel app_blog; fi\n"
        "if getent group app_blog >/dev/null; then groupdel app_blog; fi\n"
        "rm -f /var/lib/pyfleet/retired/blog\n"
        "rm -rf /etc/pyfleet/apps/shop.env /etc/pyfleet/celery/shop.env /run/shop /srv/shop\n"
        "if id -u app_shop >/dev/null 2>&1; then userdel app_shop; fi\n"
        "if getent group app_shop >/dev/null; then groupdel app_shop; fi\n"
        "rm -f /var/lib/pyfleet/retired/shop\n"
    )


def test_a_removed_broker_service_alone_reloads_systemd_and_nginx_files_alone_reload_nginx():
    broker = dict(RETIRED_SHOP, units=[], nginx_files=[], stop_nginx=False, apps={})
    assert orphans.removal_script(broker).splitlines()[-2:] == [
        "systemctl daemon-reload && systemctl reset-failed",
        "install -d -m 0700 /var/lib/pyfleet/retired",
    ]
    files = dict(RETIRED_SHOP, units=[], services=[], stop_nginx=False, apps={})
    assert orphans.removal_script(files).splitlines()[1:] == [
        "rm -f /etc/nginx/conf.d/pyfleet-app-shop.conf /etc/nginx/pyfleet/shop.upstream.conf",
        "if systemctl is-active --quiet nginx.service; then nginx -t -q && systemctl reload nginx; fi",
        "install -d -m 0700 /var/lib/pyfleet/retired",
    ]


@pytest.mark.parametrize("kind", ["units", "nginx_files", "services", "stop_nginx"])
def test_any_one_kind_of_removal_is_work(kind):
    nothing = {"units": [], "nginx_files": [], "services": [], "stop_nginx": False, "apps": {}}
    assert orphans.anything(dict(nothing, **{kind: RETIRED_SHOP[kind]})) is True
    assert orphans.anything(nothing) is False


def test_stopping_nginx_is_said():
    said = orphans.describe(dict(RETIRED_SHOP, apps={}))
    assert said[-1] == "nginx (stopped: the host serves nothing)"


def test_unit_data_is_taken_only_for_apps_gone_from_the_host():
    found = orphans.parse_probe(
        "unitfile|pyfleet-hello-worker@reports.service.d\n"
        "unitline|/etc/systemd/system/pyfleet-hello-worker@reports.service.d:User=app_hello\n"
        "unitfile|pyfleet-tools.service\n"
        "unitline|/etc/systemd/system/pyfleet-tools.service:User=root\n"
    )
    keep = {"units": [], "nginx_files": [], "services": [], "nginx": False, "apps": ["hello"]}
    gone = orphans.orphans(found, keep)
    assert gone["units"] == ["pyfleet-hello-worker@reports.service.d", "pyfleet-tools.service"]
    assert gone["apps"] == {}  # hello is still deployed; pyfleet-tools is no app's


def test_a_working_directory_that_is_no_release_names_no_base_dir():
    assert orphans.base_dir_of("/srv/hello/releases/%i") == "/srv/hello"
    assert orphans.base_dir_of("/srv/hello/current/") == "/srv/hello"
    assert orphans.base_dir_of("/srv/hello/static") is None
    assert orphans.base_dir_of(None) is None


def test_an_empty_probe_finds_nothing():
    assert orphans.parse_probe("") == {
        "units": [],
        "unit_lines": {},
        "nginx_files": [],
        "services": [],
        "nginx_enabled": False,
        "nginx_other": False,
        "retired": {},
    }
