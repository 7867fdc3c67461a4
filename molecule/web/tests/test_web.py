"""What a user of the web tier notices on a web host after a deploy."""

import json
import re

import pytest

APPS = {"hello": "hello.molecule.test", "hello-async": "hello-async.molecule.test"}


def current(host, app):
    """The release id `current` points at."""
    return host.file(f"/srv/{app}/current").linked_to.rsplit("/", 1)[-1]


def unit(host, app):
    return f"pyfleet-{app}@{current(host, app)}.service"


@pytest.mark.parametrize("app, kind", [("hello", "sampleapp-wsgi"), ("hello-async", "sampleapp-asgi")])
def test_app_answers_through_nginx(host, app, kind):
    out = host.check_output(f"curl -sf -H 'Host: {APPS[app]}' http://127.0.0.1/")
    body = json.loads(out)
    assert body["app"] == kind
    assert body["release"] == current(host, app)


@pytest.mark.parametrize("app", APPS)
def test_release_unit_runs_and_starts_at_boot(host, app):
    service = host.service(unit(host, app))
    assert service.is_running
    assert service.is_enabled


@pytest.mark.parametrize("app", APPS)
def test_only_the_current_release_runs(host, app):
    out = host.check_output(f"systemctl list-units --plain --no-legend --state=active 'pyfleet-{app}@*'")
    assert [line.split()[0] for line in out.splitlines()] == [unit(host, app)]


@pytest.mark.parametrize("app", APPS)
def test_app_does_not_run_as_root(host, app):
    pid = host.check_output(f"systemctl show -p MainPID --value {unit(host, app)}")
    uid = host.check_output(f"ps -o uid= -p {pid}")
    assert host.check_output(f"getent passwd {uid} | cut -d: -f1") == f"app_{app.replace('-', '_')}"


@pytest.mark.parametrize("app", APPS)
def test_sandbox_scores_at_most_1_5(host, app):
    out = host.check_output(f"systemd-analyze security {unit(host, app)} | tail -1")
    score = float(re.search(r"level for \S+: (\d+\.\d+)", out).group(1))
    assert score <= 1.5, out


def test_static_file_served_by_nginx_with_cache_headers(host):
    out = host.check_output("curl -si -H 'Host: hello.molecule.test' http://127.0.0.1/static/hello.txt")
    assert out.startswith("HTTP/1.1 200")
    assert "Cache-Control: max-age=" in out
    assert "hello from pyfleet" in out


def test_unknown_host_gets_no_answer(host):
    # return 444: nginx closes the connection; curl reports an empty reply (52).
    assert host.run("curl -s -H 'Host: unknown.test' http://127.0.0.1/").rc == 52


def test_server_tokens_off(host):
    out = host.check_output("curl -sI -H 'Host: hello.molecule.test' http://127.0.0.1/static/hello.txt")
    assert re.search(r"^Server: nginx\s*$", out, re.M)


def test_secrets_file_is_root_only(host):
    env = host.file("/etc/pyfleet/apps/hello.env")
    assert env.user == "root" and env.mode == 0o600
    assert "SECRET_KEY=" in host.check_output("cat /etc/pyfleet/apps/hello.env")


def test_revision_file_records_the_release(host):
    revision = host.file("/srv/hello/current/REVISION").content_string
    assert f"release={current(host, 'hello')}" in revision
    assert "installer=uv" in revision


def test_release_code_is_not_writable_by_the_app(host):
    release = host.file(f"/srv/hello/releases/{current(host, 'hello')}")
    assert release.user == "root" and release.mode == 0o750


def test_every_host_hook_ran_as_the_app_in_the_release(host):
    hooked = host.file(f"/srv/hello/shared/hooked-{current(host, 'hello')}")
    assert hooked.exists
    assert hooked.user == "app_hello"


def test_nginx_config_is_valid(host):
    assert host.run("nginx -t").rc == 0
