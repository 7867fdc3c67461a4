"""What the roles decide, in Python with unit tests (their templates only render).

- ``exec_start``: the app server's command line (gunicorn or uvicorn) of an app unit.
- ``units_to_restart``: which Celery worker units a converge restarts.
- ``celery_units_to_switch``: which Celery units a restart puts on ``current`` (one systemctl call).
- ``rabbitmq_problem``: the first mistake in the rabbitmq role's inputs, as one line.
- ``failure_line``: the one line a failed deploy step ends with.

Ansible reaches them through plugins/filter/pyfleet_decisions.py.
"""

from pyfleet import failures

WILDCARD_ADDRESSES = ("0.0.0.0", "::", "*", "[::]")
MIN_RABBITMQ_PASSWORD = 16


def exec_start(app, workers, graceful_timeout, keepalive_timeout, request_timeout, extra_args=()):
    """The app unit's ExecStart: one entry per line of the unit file (the program first).

    ``app`` is a normalised app (``pyfleet.apps``); the release directory and the
    socket contain the unit's instance, ``%i`` (the release id). gunicorn serves
    WSGI apps (and ASGI ones through UvicornWorker), uvicorn ASGI apps. Both keep
    an idle connection from nginx longer than nginx does (``keepalive_timeout``),
    so nginx, which sends the requests, closes it first.
    """
    release_dir = f"{app['releases_dir']}/%i"
    socket = f"{app['socket_dir']}/%i/app.sock"
    if app["server"] == "gunicorn":
        lines = [f"{release_dir}/venv/bin/gunicorn", f"--bind unix:{socket}", f"--workers {workers}"]
        if app["threads"] > 1:
            lines.append(f"--threads {app['threads']}")
        lines += [
            f"--worker-class {app['worker_class']}",
            f"--graceful-timeout {graceful_timeout}",
            f"--keep-alive {keepalive_timeout}",
            f"--timeout {request_timeout}",
            "--forwarded-allow-ips '*'",
            "--access-logfile -",
            f"--name {app['name']}-%i",
        ]
    else:
        lines = [
            f"{release_dir}/venv/bin/uvicorn",
            f"--uds {socket}",
            f"--workers {workers}",
            f"--timeout-graceful-shutdown {graceful_timeout}",
            f"--timeout-keep-alive {keepalive_timeout}",
            "--proxy-headers",
            "--forwarded-allow-ips '*'",
            "--no-server-header",
        ]
    return lines + [str(arg) for arg in extra_args or []] + [app["entry"]]


def units_to_restart(units, everything, changed_types, started):
    """The worker units to restart after a converge.

    All of the host's when the unit file, the environment or the settings
    module changed (``everything``), else those whose type's drop-in changed;
    never one that was just started (it already runs the new settings).
    """
    return [
        unit["unit"] for unit in units if (everything or unit["type"] in changed_types) and unit["unit"] not in started
    ]


def celery_units_to_switch(celery_plan, host, types=(), beat_flower=False, installed=None):
    """The Celery units one ``systemctl restart`` call restarts on ``host`` (warm stops side by side).

    Its worker units (of ``types`` only, when given), then beat and Flower where
    they run on ``host`` when ``beat_flower`` (a deploy or rollback switched
    ``current`` under them). ``installed``: the unit file names present on the
    host, when known; a unit whose file is missing (a host not converged yet) is
    left out, since systemd would refuse the whole call.
    """
    if not celery_plan.get("enabled"):
        return []
    app = celery_plan["app"]
    units = [u["unit"] for u in celery_plan["hosts"].get(host, []) if not types or u["type"] in types]
    files = dict.fromkeys(units, f"{app['worker_unit']}.service")
    if beat_flower:
        for unit, runs_here in (
            (app["beat_unit"], celery_plan["beat_host"]),
            (app["flower_unit"], celery_plan["flower_host"]),
        ):
            if runs_here == host:
                units.append(unit)
                files[unit] = unit
    return units if installed is None else [unit for unit in units if files[unit] in installed]


def rabbitmq_problem(host, bind_addresses, apps, passwords, consumer_timeout, longest_time_limit):
    """The first mistake in the rabbitmq role's inputs as one line naming host, variable and fix; "" when none."""
    if any(str(address).strip() in WILDCARD_ADDRESSES for address in bind_addresses or []):
        return f"rabbitmq_bind_addresses on {host} binds every address; list the private address and 127.0.0.1"
    for app in apps or []:
        password = (passwords or {}).get(app)
        if not isinstance(password, str) or len(password) < MIN_RABBITMQ_PASSWORD or password.startswith("-"):
            return (
                f"rabbitmq_passwords.{app} on {host}: not set, shorter than {MIN_RABBITMQ_PASSWORD} characters "
                f"or starting with -; set it from ansible-vault (rabbitmq_passwords: {{{app}: ...}})"
            )
    if int(consumer_timeout) <= int(longest_time_limit):
        return (
            f"rabbitmq_consumer_timeout on {host}: {consumer_timeout} s is not longer than the longest task "
            f"time limit ({longest_time_limit} s), so RabbitMQ would cancel running tasks; remove the override "
            "or set it above that"
        )
    return ""


def failure_line(host, result):
    """The one line a failed deploy step ends with.

    ``result`` is Ansible's ``ansible_failed_result`` (a loop's result holds
    ``results``): the module's own message, which names host, app and reason
    (``failures.cause``: a crashed module's exception); for a hook, the command,
    its exit code and the last line it printed (an app's log lines end with the error).
    """
    failed = [r for r in result.get("results", [result]) if r.get("failed")]
    first = failed[0] if failed else result
    if "cmd" in first:
        item = first.get("item")
        app = item[0].get("app", {}).get("name", "?") if isinstance(item, (list, tuple)) and item else "?"
        output = (str(first.get("stderr") or "") + "\n" + str(first.get("stdout") or "")).strip().splitlines()
        command = first["cmd"][-1] if isinstance(first["cmd"], list) else first["cmd"]
        return (
            f"{host}: app {app}: hook {command} failed (exit {first.get('rc', '?')}): "
            f"{output[-1] if output else 'no output'}"
        )
    # A module's message names host, app and reason; when it crashed, failures.cause reads its output.
    why = failures.cause(first)
    return why if why.startswith(f"{host}: ") else f"{host}: {why}"
