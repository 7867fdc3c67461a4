"""What the roles decide (pyfleet.decisions): app command lines, worker restarts, RabbitMQ checks, failure lines."""

import pytest

from pyfleet import decisions
from pyfleet.apps import normalize_apps


def app(**spec):
    base = {
        "name": "shop",
        "source": {"requirement": "shop==1.0"},
        "kind": "wsgi",
        "entry": "shop.wsgi:app",
        "domains": ["shop.example.com"],
    }
    return normalize_apps([dict(base, **spec)], check_paths=False)[0]


def command(the_app, extra=()):
    return decisions.exec_start(
        the_app, workers=5, graceful_timeout=30, keepalive_timeout=75, request_timeout=60, extra_args=extra
    )


def test_gunicorn_serves_on_the_release_socket_with_graceful_and_keepalive_timeouts():
    lines = command(app(threads=4), extra=["--max-requests", "1000"])
    assert lines[0] == "/srv/shop/releases/%i/venv/bin/gunicorn"
    assert "--bind unix:/run/shop/%i/app.sock" in lines
    assert {
        "--workers 5",
        "--threads 4",
        "--worker-class gthread",
        "--graceful-timeout 30",
        "--keep-alive 75",
        "--timeout 60",
        "--name shop-%i",
    } <= set(lines)
    assert lines[-3:] == ["--max-requests", "1000", "shop.wsgi:app"]


def test_gunicorn_without_threads_passes_no_threads_option():
    assert not any(line.startswith("--threads") for line in command(app()))


def test_uvicorn_serves_asgi_apps_with_its_own_options():
    lines = command(app(kind="asgi", entry="shop.asgi:app"))
    assert lines[0] == "/srv/shop/releases/%i/venv/bin/uvicorn"
    assert {
        "--uds /run/shop/%i/app.sock",
        "--timeout-graceful-shutdown 30",
        "--timeout-keep-alive 75",
        "--proxy-headers",
        "--no-server-header",
    } <= set(lines)
    assert lines[-1] == "shop.asgi:app"


def test_gunicorn_may_serve_asgi_through_the_uvicorn_worker():
    lines = command(app(kind="asgi", server="gunicorn", entry="shop.asgi:app"))
    assert lines[0].endswith("/gunicorn") and "--worker-class uvicorn_worker.UvicornWorker" in lines


UNITS = [{"type": "default", "unit": "w@default.service"}, {"type": "io", "unit": "w@io.service"}]


@pytest.mark.parametrize(
    ("everything", "changed", "started", "expected"),
    [
        (True, [], [], ["w@default.service", "w@io.service"]),
        (False, ["io"], [], ["w@io.service"]),
        (False, [], [], []),
        (True, [], ["w@io.service"], ["w@default.service"]),  # just started: already runs the new settings
    ],
)
def test_units_to_restart(everything, changed, started, expected):
    assert decisions.units_to_restart(UNITS, everything, changed, started) == expected


def problem(**overrides):
    args = {
        "bind_addresses": ["10.0.0.5", "127.0.0.1"],
        "apps": ["hello"],
        "passwords": {"hello": "a-long-enough-password"},
        "consumer_timeout": 3600,
        "longest_time_limit": 60,
    }
    args.update(overrides)
    return decisions.rabbitmq_problem("broker1", **args)


def test_rabbitmq_inputs_without_a_problem():
    assert problem() == ""


@pytest.mark.parametrize(
    ("overrides", "start"),
    [
        ({"bind_addresses": ["0.0.0.0"]}, "rabbitmq_bind_addresses on broker1 binds every address"),
        ({"bind_addresses": ["::"]}, "rabbitmq_bind_addresses on broker1 binds every address"),
        ({"passwords": {}}, "rabbitmq_passwords.hello on broker1: not set"),
        ({"passwords": {"hello": "short"}}, "rabbitmq_passwords.hello on broker1: not set, shorter than 16"),
        ({"passwords": {"hello": "-starts-with-a-dash-long"}}, "rabbitmq_passwords.hello on broker1"),
        ({"consumer_timeout": "60"}, "rabbitmq_consumer_timeout on broker1: 60 s is not longer than the longest"),
    ],
)
def test_rabbitmq_problems_are_one_line_naming_host_and_variable(overrides, start):
    message = problem(**overrides)
    assert message.startswith(start) and "\n" not in message


def test_failure_line_of_a_module_is_its_first_line():
    result = {"failed": True, "msg": "web1: app hello: release refused: health check 502\nmore detail"}
    assert decisions.failure_line("web1", result) == "web1: app hello: release refused: health check 502"


def test_failure_line_of_a_hook_names_app_command_exit_and_last_output_line():
    result = {
        "results": [
            {"failed": False},
            {
                "failed": True,
                "cmd": ["systemd-run", "/bin/sh", "-c", "flask db upgrade"],
                "rc": 2,
                "stdout": "step 1\n",
                "stderr": "boom: no such table\n",
                "item": [{"app": {"name": "hello"}}, "x"],
            },
        ]
    }
    assert decisions.failure_line("web1", result) == ("web1: app hello: hook flask db upgrade failed (exit 2): step 1")


def test_failure_line_without_output_says_so():
    result = {"failed": True, "cmd": ["sh", "-c", "true"], "rc": 1, "item": {"app": {"name": "x"}}}
    assert decisions.failure_line("web1", result) == "web1: app ?: hook true failed (exit 1): no output"


def test_failure_line_of_a_crashed_module_is_its_exception_on_the_host():
    result = {
        "failed": True,
        "msg": "MODULE FAILURE\nSee stdout/stderr for the exact error",
        "module_stdout": 'Traceback (most recent call last):\n  File "x", line 1\nOSError: [Errno 28] No space left on device\n',
    }
    assert decisions.failure_line("web1", result) == "web1: OSError: [Errno 28] No space left on device"


def test_the_whole_gunicorn_and_uvicorn_command_lines():
    assert command(app(threads=2)) == [
        "/srv/shop/releases/%i/venv/bin/gunicorn",
        "--bind unix:/run/shop/%i/app.sock",
        "--workers 5",
        "--threads 2",
        "--worker-class gthread",
        "--graceful-timeout 30",
        "--keep-alive 75",
        "--timeout 60",
        "--forwarded-allow-ips '*'",
        "--access-logfile -",
        "--name shop-%i",
        "shop.wsgi:app",
    ]
    assert command(app(kind="asgi", entry="shop.asgi:app")) == [
        "/srv/shop/releases/%i/venv/bin/uvicorn",
        "--uds /run/shop/%i/app.sock",
        "--workers 5",
        "--timeout-graceful-shutdown 30",
        "--timeout-keep-alive 75",
        "--proxy-headers",
        "--forwarded-allow-ips '*'",
        "--no-server-header",
        "shop.asgi:app",
    ]


def test_a_rabbitmq_password_of_exactly_the_minimum_length_is_enough():
    assert problem(passwords={"hello": "x" * 16}) == ""
    assert problem(consumer_timeout=60) == (
        "rabbitmq_consumer_timeout on broker1: 60 s is not longer than the longest task time limit (60 s), "
        "so RabbitMQ would cancel running tasks; remove the override or set it above that"
    )


@pytest.mark.parametrize(
    "hook, expected",
    [
        # A shell command string, its error on stderr only, no exit code reported.
        (
            {"cmd": "flask db upgrade", "stderr": "boom: no such table\n"},
            "app ?: hook flask db upgrade failed (exit ?): boom: no such table",
        ),
        ({"cmd": ["sh", "-c", "x"], "rc": 3, "item": [{"app": {}}, "x"]}, "app ?: hook x failed (exit 3): no output"),
        (
            {"cmd": ["sh", "-c", "x"], "rc": 3, "item": [{"host": "web1"}, "x"]},
            "app ?: hook x failed (exit 3): no output",
        ),
    ],
)
def test_failure_line_of_a_hook_says_what_it_knows(hook, expected):
    assert decisions.failure_line("web1", dict(hook, failed=True)) == f"web1: {expected}"


def test_failure_line_of_a_result_not_marked_failed_is_its_message():
    assert decisions.failure_line("web1", {"msg": "web1: unreachable"}) == "web1: unreachable"


# --- the Celery units a deploy, rollback or `fab restart TYPE` restarts in one call -------

WORKER1_UNITS = ["pyfleet-hello-worker@default.service", "pyfleet-hello-worker@io.service"]
ALL_FILES = ["pyfleet-hello-worker@.service", "pyfleet-hello-beat.service", "pyfleet-hello-flower.service"]


def celery_plan():
    """The lab's Celery plan, with Flower beside beat on worker2."""
    from celery_inventory import HOSTS, plan

    flower = {
        "celery_flower": True,
        "celery_flower_domain": "flower.lab.test",
        "celery_flower_users": [{"name": "ops", "password": "s3cret-from-vault"}],
    }
    hosts = dict(HOSTS, worker2=dict(HOSTS["worker2"], **flower))
    return plan(hosts=hosts)


def test_a_switch_restarts_the_worker_units_and_beat_and_flower_where_they_run():
    the_plan = celery_plan()
    switch = decisions.celery_units_to_switch
    assert switch(the_plan, "worker1", beat_flower=True, installed=ALL_FILES) == WORKER1_UNITS
    assert switch(the_plan, "worker2", beat_flower=True, installed=ALL_FILES) == [
        "pyfleet-hello-worker@cpu.service",
        "pyfleet-hello-beat.service",
        "pyfleet-hello-flower.service",
    ]
    # A restart of worker types alone (fab restart TYPE) leaves beat and Flower running.
    assert switch(the_plan, "worker2", installed=ALL_FILES) == ["pyfleet-hello-worker@cpu.service"]


def test_only_the_chosen_types_restart():
    the_plan = celery_plan()
    assert decisions.celery_units_to_switch(the_plan, "worker1", types=["io"]) == ["pyfleet-hello-worker@io.service"]
    assert decisions.celery_units_to_switch(the_plan, "worker1", types=["cpu"]) == []
    assert decisions.celery_units_to_switch(the_plan, "worker1") == WORKER1_UNITS


def test_units_whose_file_is_missing_are_left_out():
    """systemd refuses a whole `systemctl restart` that names a unit it does not know."""
    the_plan = celery_plan()
    switch = decisions.celery_units_to_switch
    assert switch(the_plan, "worker2", beat_flower=True, installed=[]) == []
    assert switch(the_plan, "worker2", beat_flower=True, installed=["pyfleet-hello-flower.service"]) == [
        "pyfleet-hello-flower.service"
    ]
    assert switch(the_plan, "worker1", beat_flower=True, installed=["pyfleet-hello-worker@.service"]) == WORKER1_UNITS


def test_hosts_without_celery_units_restart_nothing():
    the_plan = celery_plan()
    assert decisions.celery_units_to_switch(the_plan, "web1", beat_flower=True, installed=ALL_FILES) == []
    assert decisions.celery_units_to_switch({"enabled": False}, "worker1", beat_flower=True) == []
