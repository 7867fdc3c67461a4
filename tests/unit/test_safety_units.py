"""The systemd units as the roles write them: restart policy, stop timeout, sandbox, sockets.

Each unit template is rendered with Ansible's templating and pyfleet's filters
(tests/unit/rendering.py) for a six-host fleet, and the lines that keep production
safe are asserted one by one.
"""

import pytest
from rendering import directives, fleet_plan, render, unit_values

# Every pyfleet unit's hardening, written out here (not read from pyfleet/sandbox.py):
# a line dropped from the template or from the sandbox module fails these tests.
HARDENING = [
    "CapabilityBoundingSet=",
    "IPAddressDeny=any",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "NoNewPrivileges=yes",
    "PrivateDevices=yes",
    "PrivateTmp=yes",
    "PrivateUsers=yes",
    "ProcSubset=pid",
    "ProtectClock=yes",
    "ProtectControlGroups=yes",
    "ProtectHome=yes",
    "ProtectHostname=yes",
    "ProtectKernelLogs=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelTunables=yes",
    "ProtectProc=invisible",
    "ProtectSystem=strict",
    "RemoveIPC=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @resources",
    "UMask=0077",
]

PLAN = fleet_plan()


def lines(text):
    return [f"{k}={v}" for k, v in directives(text)]


def service_section(text):
    return text.split("[Service]", 1)[1].split("[Install]", 1)[0]


def one(text, key):
    values = unit_values(text, key)
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def app_unit(name="shop", **variables):
    app = next(a for a in PLAN["hosts"]["web1"]["apps"] if a["name"] == name)
    return render("app_server", "etc/systemd/system/app@.service.j2", "web1", item=app, **variables)


def worker_unit(host="worker1", **variables):
    return render("celery_worker", "etc/systemd/system/pyfleet-app-worker@.service.j2", host, **variables)


def worker_dropin(unit):
    return render(
        "celery_worker", "etc/systemd/system/pyfleet-app-worker@.service.d/pyfleet.conf.j2", "worker1", item=unit
    )


def beat_unit():
    return render("celery_beat", "etc/systemd/system/pyfleet-app-beat.service.j2", "worker1")


def flower_unit():
    return render("flower", "etc/systemd/system/pyfleet-app-flower.service.j2", "worker2")


# --- app units (roles/app_server) ----------------------------------------------------


@pytest.mark.parametrize(("name", "unit_type"), [("shop", "notify"), ("api", "exec")])
def test_app_unit_restart_policy_and_readiness(name, unit_type):
    text = app_unit(name)
    assert one(text, "Type") == unit_type
    if unit_type == "notify":  # gunicorn's sd_notify, from its main process only
        assert one(text, "NotifyAccess") == "main"
    else:
        assert "NotifyAccess" not in dict(directives(text))
    assert one(text, "Restart") == "on-failure"
    assert one(text, "RestartSec") == "2"
    assert one(text, "TimeoutStartSec") == "90"
    assert one(text, "WantedBy") == "multi-user.target"


def test_app_unit_stops_warm_with_a_timeout_longer_than_gunicorns_grace():
    text = app_unit()
    assert one(text, "KillMode") == "mixed"  # SIGTERM to the main process: requests in flight finish
    assert "KillSignal" not in dict(directives(text))  # systemd's SIGTERM
    exec_start = one(text, "ExecStart").split()
    graceful = int(exec_start[exec_start.index("--graceful-timeout") + 1])
    assert graceful == 30
    assert int(one(text, "TimeoutStopSec")) == graceful + 15  # app_server_stop_margin
    assert int(one(text, "TimeoutStopSec")) > graceful


def test_app_unit_stop_timeout_follows_the_settings():
    text = app_unit(app_server_graceful_timeout=50, app_server_stop_margin=5)
    assert one(text, "TimeoutStopSec") == "55"
    assert "--graceful-timeout 50" in " ".join(one(text, "ExecStart").split())


def test_app_unit_serves_its_release_on_a_socket_of_its_own():
    text = app_unit()
    exec_start = one(text, "ExecStart").split()
    assert exec_start[0] == "/srv/shop/releases/%i/venv/bin/gunicorn"
    assert exec_start[exec_start.index("--bind") + 1] == "unix:/run/shop/%i/app.sock"
    assert exec_start[-1] == "proj.wsgi:app"
    assert exec_start[exec_start.index("--workers") + 1] == "5"  # 2 * 2 CPUs + 1
    assert exec_start[exec_start.index("--keep-alive") + 1] == "75"
    assert exec_start[exec_start.index("--timeout") + 1] == "60"
    # /run/shop/%i: per instance, so stopping the old release never removes the new one's socket.
    assert one(text, "RuntimeDirectory") == "shop/%i"
    assert one(text, "RuntimeDirectoryMode") == "0750"  # nginx (group app_shop) may connect, others not
    assert one(text, "WorkingDirectory") == "/srv/shop/releases/%i"
    assert one(text, "AssertPathExists") == "/srv/shop/releases/%i/venv/bin/python"


def test_asgi_unit_binds_uvicorn_to_the_instance_socket():
    exec_start = one(app_unit("api"), "ExecStart").split()
    assert "unix:/run/api/%i/app.sock" in " ".join(exec_start) or "/run/api/%i/app.sock" in exec_start


def test_app_unit_runs_as_the_app_user_with_its_environment():
    text = app_unit()
    assert one(text, "User") == "app_shop"
    assert one(text, "Group") == "app_shop"
    assert unit_values(text, "EnvironmentFile") == ["/etc/pyfleet/apps/shop.env", "-/etc/pyfleet/celery/shop.env"]
    env = one(text, "Environment").split()
    assert env == ["PYFLEET_APP=shop", "PYFLEET_RELEASE=%i", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"]
    # No Celery: no producer environment file.
    assert unit_values(app_unit("api"), "EnvironmentFile") == ["/etc/pyfleet/apps/api.env"]


def test_app_unit_orders_itself_before_nginx():
    text = app_unit()
    # At shutdown nginx stops first and finishes its requests while the app still answers.
    assert one(text, "Before") == "nginx.service"
    assert one(text, "After") == "network.target"
    assert one(text, "Description") == "pyfleet app shop release %i (gunicorn)"
    assert one(text, "SyslogIdentifier") == "shop"


def test_app_unit_sandbox():
    text = app_unit()
    service = lines(service_section(text))
    assert all(line in service for line in HARDENING), sorted(set(HARDENING) - set(service))
    assert "ReadWritePaths=/srv/shop/shared" in service
    assert "SystemCallFilter=@chown" in service  # gunicorn chowns its socket
    assert "SystemCallErrorNumber=EPERM" in service
    # Over IP: loopback and the broker (a Celery producer), nothing else.
    assert one(text, "IPAddressAllow") == "localhost 10.0.0.5"
    assert one(app_unit("api"), "IPAddressAllow") == "localhost"
    assert "SystemCallFilter=@chown" not in lines(app_unit("api"))  # uvicorn needs no chown


def test_app_unit_allow_list_takes_the_settings():
    text = app_unit(
        app_server_ip_address_allow=["localhost", "10.9.9.9"], app_server_ip_address_allow_by_app={"shop": ["10.8.8.8"]}
    )
    assert one(text, "IPAddressAllow") == "localhost 10.9.9.9 10.8.8.8 10.0.0.5"


# --- Celery worker units (roles/celery_worker) ------------------------------------------


def test_worker_unit_stops_warm_and_restarts_on_failure():
    text = worker_unit()
    assert one(text, "Type") == "exec"
    assert one(text, "KillSignal") == "SIGTERM"  # Celery's warm shutdown
    assert one(text, "KillMode") == "mixed"  # to the main process only: children finish their task
    assert one(text, "Restart") == "on-failure"
    assert one(text, "RestartSec") == "5"
    assert "TimeoutStopSec" not in dict(directives(text))  # per type, in the drop-in
    assert one(text, "WantedBy") == "multi-user.target"


def test_worker_unit_runs_the_current_release_with_the_drop_ins_arguments():
    text = worker_unit()
    assert one(text, "WorkingDirectory") == "/srv/shop/current"
    assert one(text, "AssertPathExists") == "/srv/shop/current/venv/bin/celery"
    assert one(text, "User") == "app_shop"
    assert one(text, "Group") == "app_shop"
    assert one(text, "EnvironmentFile") == "/etc/pyfleet/celery/shop.env"
    assert one(text, "Environment").split() == [
        "PYFLEET_APP=shop",
        "PYFLEET_CELERY_WORKER_TYPE=%i",
        "PYTHONUNBUFFERED=1",
        "PYTHONDONTWRITEBYTECODE=1",
    ]
    assert one(text, "ExecStart").split() == [
        "/srv/shop/current/venv/bin/celery",
        "--app",
        "proj.tasks:app",
        "worker",
        "--loglevel",
        "INFO",
        "$CELERY_WORKER_ARGS",
    ]
    assert one(text, "After") == "network-online.target"
    assert one(text, "Wants") == "network-online.target"
    assert one(text, "SyslogIdentifier") == "shop-worker-%i"
    assert one(text, "Description") == "pyfleet celery worker %i of app shop"


def test_worker_unit_sandbox_allows_only_loopback_and_the_broker():
    text = worker_unit()
    service = lines(service_section(text))
    assert all(line in service for line in HARDENING), sorted(set(HARDENING) - set(service))
    assert "ReadWritePaths=/srv/shop/shared" in service
    assert "SystemCallErrorNumber=EPERM" in service
    assert one(text, "IPAddressAllow") == "localhost 10.0.0.5"
    assert one(worker_unit(celery_worker_ip_address_allow=["10.7.0.0/16"]), "IPAddressAllow") == (
        "localhost 10.0.0.5 10.7.0.0/16"
    )


@pytest.mark.parametrize("index", [0, 1])
def test_worker_drop_in_stop_timeout_outlasts_the_time_limit(index):
    unit = PLAN["celery"]["hosts"]["worker1"][index]
    text = worker_dropin(unit)
    assert text.count("[Service]") == 1
    stop = int(one(text, "TimeoutStopSec"))
    assert stop == unit["time_limit"] + 30
    assert stop > unit["time_limit"]
    args = one(text, "Environment")
    assert args == '"CELERY_WORKER_ARGS=' + " ".join(unit["args"]) + '"'
    assert f"--hostname {unit['type']}@worker1" in args
    assert "--prefetch-multiplier 1" in args


# --- beat and Flower ----------------------------------------------------------------------


def test_beat_unit():
    text = beat_unit()
    assert one(text, "Type") == "exec"
    assert one(text, "KillSignal") == "SIGTERM"
    assert one(text, "TimeoutStopSec") == "30"
    assert one(text, "Restart") == "on-failure"
    assert one(text, "RestartSec") == "5"
    assert one(text, "User") == "app_shop"
    assert one(text, "WorkingDirectory") == "/srv/shop/current"
    exec_start = one(text, "ExecStart").split()
    assert exec_start[:4] == ["/srv/shop/current/venv/bin/celery", "--app", "proj.tasks:app", "beat"]
    schedule = exec_start[exec_start.index("--schedule") + 1]
    service = lines(service_section(text))
    assert all(line in service for line in HARDENING)
    # The schedule file is the one place beat may write.
    assert unit_values(text, "ReadWritePaths") == [schedule.rsplit("/", 1)[0]]
    assert one(text, "IPAddressAllow") == "localhost 10.0.0.5"
    assert one(text, "WantedBy") == "multi-user.target"
    assert one(text, "Group") == "app_shop"
    assert one(text, "EnvironmentFile") == "/etc/pyfleet/celery/shop.env"
    assert one(text, "Environment").split() == ["PYFLEET_APP=shop", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"]
    assert one(text, "AssertPathExists") == "/srv/shop/current/venv/bin/celery"
    assert one(text, "After") == "network-online.target"
    assert one(text, "Wants") == "network-online.target"
    assert one(text, "SyslogIdentifier") == "shop-beat"
    assert one(text, "Description") == "pyfleet celery beat of app shop"
    assert exec_start[exec_start.index("--loglevel") + 1] == "INFO"
    assert "SystemCallErrorNumber=EPERM" in service


def test_flower_unit_is_reachable_only_from_the_load_balancers():
    text = flower_unit()
    assert one(text, "Type") == "exec"
    assert one(text, "Restart") == "on-failure"
    assert one(text, "TimeoutStopSec") == "30"
    assert one(text, "KillSignal") == "SIGTERM"
    service = lines(service_section(text))
    assert all(line in service for line in HARDENING)
    # Flower has no login of its own: the IP allow list is what keeps others out.
    assert "FLOWER_UNAUTHENTICATED_API=true" in one(text, "Environment").split()
    # Loopback, the broker it watches, the load balancer that serves it; nobody else.
    assert one(text, "IPAddressAllow") == "localhost 10.0.0.5 10.0.0.1"
    exec_start = one(text, "ExecStart").split()
    assert "--xheaders=True" in exec_start
    assert f"--port={PLAN['celery']['flower']['port']}" in exec_start
    assert f"--address={PLAN['celery']['flower']['address']}" in exec_start
    assert "--purge_offline_workers=600" in exec_start
    assert exec_start[:4] == ["/srv/shop/current/venv/bin/celery", "--app", "proj.tasks:app", "flower"]
    assert one(text, "RestartSec") == "5"
    assert one(text, "User") == "app_shop"
    assert one(text, "Group") == "app_shop"
    assert one(text, "WorkingDirectory") == "/srv/shop/current"
    assert one(text, "EnvironmentFile") == "/etc/pyfleet/celery/shop.env"
    assert one(text, "AssertPathExists") == "/srv/shop/current/venv/bin/celery"
    assert one(text, "After") == "network-online.target"
    assert one(text, "Wants") == "network-online.target"
    assert one(text, "SyslogIdentifier") == "shop-flower"
    assert one(text, "Description") == "pyfleet flower of app shop"
    assert one(text, "WantedBy") == "multi-user.target"
    assert unit_values(text, "ReadWritePaths") == []  # Flower writes nothing


# --- brokers' drop-ins -----------------------------------------------------------------------


def test_redis_drop_in_limits_writes_and_ip():
    text = render(
        "redis",
        "etc/systemd/system/redis-server.service.d/pyfleet.conf.j2",
        "broker1",
        redis_allowed_networks=["10.0.0.0/24"],
    )
    assert one(text, "LimitNOFILE") == "65535"
    # Reset first, then only the data, log and run directories: /etc/redis stays read-only.
    assert unit_values(text, "ReadWritePaths") == ["", "-/var/lib/redis -/var/log/redis -/run/redis"]
    assert one(text, "IPAddressDeny") == "any"
    assert one(text, "IPAddressAllow") == "localhost 10.0.0.0/24"
    open_text = render("redis", "etc/systemd/system/redis-server.service.d/pyfleet.conf.j2", "broker1")
    assert "IPAddressDeny" not in dict(directives(open_text))


RABBITMQ_SANDBOX = [
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=",
    "ProtectSystem=strict",
    "ReadWritePaths=/var/lib/rabbitmq /var/log/rabbitmq",
    "PrivateUsers=yes",
    "ProtectProc=invisible",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "RestrictSUIDSGID=yes",
    "RestrictRealtime=yes",
    "LockPersonality=yes",
    "RestrictNamespaces=yes",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallErrorNumber=EPERM",
    "RemoveIPC=yes",
]


def test_rabbitmq_drop_in_sandbox():
    text = render(
        "rabbitmq",
        "etc/systemd/system/rabbitmq-server.service.d/pyfleet.conf.j2",
        "broker1",
        pyfleet_plan=fleet_plan("rabbitmq"),
        rabbitmq_allowed_networks=["10.0.0.0/24"],
    )
    found = lines(text)
    assert found[0] == "LimitNOFILE=65536"
    assert found[1:3] == ["StandardOutput=journal", "StandardError=journal"]
    assert found[3:-2] == RABBITMQ_SANDBOX
    assert "MemoryDenyWriteExecute=yes" not in found  # the Erlang JIT writes code
    assert found[-2:] == ["IPAddressDeny=any", "IPAddressAllow=localhost 10.0.0.0/24"]


def test_erlangs_port_mapper_listens_on_loopback_only():
    # Debian's epmd.socket listens on every address; the list is reset, then loopback only.
    text = render("rabbitmq", "etc/systemd/system/epmd.socket.d/pyfleet.conf.j2", "broker1")
    assert lines(text) == ["ListenStream=", "ListenStream=127.0.0.1:4369"]
