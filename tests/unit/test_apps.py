"""Unit tests for pyfleet.apps: app spec defaults, every one-line error, conflicts."""

import copy
import importlib.util
from pathlib import Path

import pytest

from pyfleet.apps import KEYS, SANDBOX_OPTIONS, AppSpec, default_user, normalize_apps, workers_for
from pyfleet.errors import PyfleetError

FIXTURES = Path(__file__).parent / "fixtures" / "apps"
ROOT = Path(__file__).resolve().parents[2]


def spec(**overrides):
    """A minimal valid app spec (paths relative to the fixtures dir), with overrides."""
    base = {
        "name": "api",
        "source": {"path": "proj"},
        "kind": "wsgi",
        "entry": "proj.wsgi:app",
        "domains": ["api.example.com"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()


def norm(*apps, **kwargs):
    """normalize_apps on the fixtures dir."""
    kwargs.setdefault("project_dir", FIXTURES)
    return normalize_apps(list(apps), **kwargs)


def error(*apps, **kwargs):
    """The one-line message normalize_apps raises."""
    with pytest.raises(PyfleetError) as caught:
        norm(*apps, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- defaults -------------------------------------------------------------------


def test_minimal_spec_gets_every_default():
    (app,) = norm(spec())
    assert app == {
        "name": "api",
        "source": {"type": "path", "path": str((FIXTURES / "proj").resolve())},
        "requirements": None,
        "kind": "wsgi",
        "entry": "proj.wsgi:app",
        "module": "proj.wsgi",
        "callable": "app",
        "server": "gunicorn",
        "worker_class": "sync",
        "workers": None,
        "threads": 1,
        "env": {},
        "secrets": {},
        "static_dir": None,
        "static_url": "/static/",
        "domains": ["api.example.com"],
        "health_path": "/healthz",
        "hooks": {"once": [], "every_host": []},
        "keep_releases": 5,
        "hosts": "web",
        "celery": None,
        "sandbox_relax": [],
        "user": "app_api",
        "group": "app_api",
        "base_dir": "/srv/api",
        "releases_dir": "/srv/api/releases",
        "shared_dir": "/srv/api/shared",
        "current_link": "/srv/api/current",
        "socket_dir": "/run/api",
        "unit_name": "pyfleet-api",
        "upstream": "pyfleet_api",
    }


def test_asgi_defaults_to_standalone_uvicorn():
    (app,) = norm(spec(kind="asgi"))
    assert (app["server"], app["worker_class"]) == ("uvicorn", None)


def test_asgi_on_gunicorn_uses_uvicorn_worker():
    (app,) = norm(spec(kind="asgi", server="gunicorn"))
    assert app["worker_class"] == "uvicorn_worker.UvicornWorker"


def test_threads_make_gthread_workers():
    (app,) = norm(spec(threads=4))
    assert (app["worker_class"], app["threads"]) == ("gthread", 4)


@pytest.mark.parametrize(
    "overrides, cpus, workers",
    [
        ({}, 2, 5),  # sync gunicorn: 2*cpus+1
        ({"threads": 2}, 4, 9),
        ({"kind": "asgi"}, 4, 4),  # uvicorn: cpus
        ({"kind": "asgi", "server": "gunicorn"}, 3, 3),
        ({}, 40, 64),  # capped
        ({"workers": 7}, 2, 7),  # explicit wins
    ],
)
def test_workers_computed_from_cpus(overrides, cpus, workers):
    (app,) = norm(spec(**overrides), cpus=cpus)
    assert app["workers"] == workers
    (later,) = norm(spec(**overrides))
    assert workers_for(later, cpus) == workers


def test_workers_for_rejects_bad_cpus():
    (app,) = norm(spec())
    with pytest.raises(PyfleetError, match="api: cpus 0 is not a positive integer"):
        workers_for(app, 0)


def test_full_spec_is_normalised():
    (app,) = norm(
        spec(
            source={"path": str(FIXTURES / "proj")},
            requirements="pinned.txt",
            kind="asgi",
            server="gunicorn",
            env={"LOG_LEVEL": "info", "RETRIES": 3, "RATIO": 0.5},
            secrets={"DB_PASSWORD": "hunter2"},
            static_dir="static/",
            static_url="/assets/",
            domains=["API.Example.com", "*.api.example.com"],
            health_path="/ping",
            hooks={"once": ["proj migrate"]},
            user="apisvc",
            base_dir="/opt/apps/api/",
            keep_releases=3,
            hosts="web:&prod",
            celery={"app": "proj.tasks:app", "types": ["fast"]},
            sandbox_relax=[{"option": "MemoryDenyWriteExecute", "reason": " cffi callbacks "}],
        )
    )
    assert app["requirements"] == str((FIXTURES / "pinned.txt").resolve())
    assert app["env"] == {"LOG_LEVEL": "info", "RETRIES": "3", "RATIO": "0.5"}
    assert app["static_dir"] == "static"
    assert app["domains"] == ["api.example.com", "*.api.example.com"]
    assert app["hooks"] == {"once": ["proj migrate"], "every_host": []}
    assert (app["user"], app["group"], app["base_dir"]) == ("apisvc", "apisvc", "/opt/apps/api")
    assert app["releases_dir"] == "/opt/apps/api/releases"
    assert app["celery"] == {"app": "proj.tasks:app", "types": ["fast"]}
    assert app["sandbox_relax"] == [{"option": "MemoryDenyWriteExecute", "reason": "cffi callbacks"}]


def test_other_sources_are_normalised():
    wheel, req = norm(
        spec(source={"wheel": "dist/proj-0.1.0-py3-none-any.whl"}),
        spec(name="web", source={"requirement": "proj[extra] == 0.1.0"}, domains=["web.example.com"]),
    )
    assert wheel["source"] == {
        "type": "wheel",
        "wheel": str((FIXTURES / "dist/proj-0.1.0-py3-none-any.whl").resolve()),
    }
    assert req["source"] == {
        "type": "requirement",
        "requirement": "proj[extra]==0.1.0",
        "name": "proj",
        "version": "0.1.0",
    }


def test_no_apps_is_an_empty_list():
    assert normalize_apps(None) == [] and normalize_apps([]) == []


def test_long_names_get_short_distinct_users():
    long_a, long_b = "a" * 31, "a" * 30 + "b"
    assert default_user("my-app") == "app_my_app"
    assert len(default_user(long_a)) == 32
    assert default_user(long_a) != default_user(long_b)


def test_check_paths_off_skips_the_filesystem():
    (app,) = norm(spec(source={"path": "nowhere"}, requirements="nowhere.txt"), check_paths=False)
    assert app["source"]["path"].endswith("nowhere")


def test_secrets_stay_out_of_repr_and_errors():
    (app,) = norm(spec(secrets={"DB_PASSWORD": "hunter2"}))
    assert isinstance(app, AppSpec)
    assert "hunter2" not in repr(app) and "hunter2" not in str([app])
    assert app["secrets"] == {"DB_PASSWORD": "hunter2"}
    message = error(spec(secrets={"DB_PASSWORD": ["hunter2"]}))
    assert "hunter2" not in message
    assert message == (
        "pyfleet_apps[0].secrets.DB_PASSWORD (app api): expected a string or number, got a value; quote it"
    )


def test_the_input_is_not_modified():
    original = spec(hooks={"once": ["x"]}, env={"A": 1})
    kept = copy.deepcopy(original)
    norm(original, cpus=2)
    assert original == kept


# --- errors, one per rule --------------------------------------------------------

ERRORS = [
    # (id, spec overrides, exact message)
    ("kind", {"kind": "wsgx"}, "pyfleet_apps[0].kind (app api): 'wsgx' is not one of wsgi, asgi; set kind: wsgi or kind: asgi"),
    ("missing-entry", {"entry": DROP}, "pyfleet_apps[0].entry (app api): is missing; add entry: myapp.wsgi:app"),
    ("missing-domains", {"domains": []}, "pyfleet_apps[0].domains (app api): is missing; add domains: [myapp.example.com]"),
    ("missing-source", {"source": DROP}, "pyfleet_apps[0].source (app api): is missing; add source: {path: apps/myapp}"),
    ("missing-kind", {"kind": None}, "pyfleet_apps[0].kind (app api): is missing; add kind: wsgi"),
    ("missing-name", {"name": DROP}, "pyfleet_apps[0].name: is missing; add name: myapp (lowercase letters, digits, '-')"),
    ("bad-name", {"name": "My_App"}, "pyfleet_apps[0].name: 'My_App' is not a valid app name (a lowercase letter, then up to 30 lowercase letters, digits or '-'); rename it, e.g. name: my-app"),
    ("long-name", {"name": "a" * 32}, "pyfleet_apps[0].name: '" + "a" * 32 + "' is not a valid app name (a lowercase letter, then up to 30 lowercase letters, digits or '-'); rename it, e.g. name: myapp"),
    ("unknown-key", {"kindd": "wsgi"}, "pyfleet_apps[0].kindd (app api): unknown key; did you mean kind? allowed keys: " + ", ".join(sorted(KEYS))),
    ("server-wsgi", {"server": "uvicorn"}, "pyfleet_apps[0].server (app api): 'uvicorn' cannot serve wsgi apps; use server: gunicorn"),
    ("server-asgi", {"kind": "asgi", "server": "hypercorn"}, "pyfleet_apps[0].server (app api): 'hypercorn' cannot serve asgi apps; use server: uvicorn or server: gunicorn"),
    ("entry-colon", {"entry": "proj.wsgi"}, "pyfleet_apps[0].entry (app api): 'proj.wsgi' is not module:callable; write e.g. entry: myapp.wsgi:app"),
    ("entry-module", {"entry": "proj-x.wsgi:app"}, "pyfleet_apps[0].entry (app api): module 'proj-x.wsgi' in 'proj-x.wsgi:app' is not a dotted Python name; write e.g. entry: myapp.wsgi:app"),
    ("entry-keyword", {"entry": "proj.wsgi:class"}, "pyfleet_apps[0].entry (app api): callable 'class' in 'proj.wsgi:class' is not a dotted Python name; write e.g. entry: myapp.wsgi:app"),
    ("workers-range", {"workers": 65}, "pyfleet_apps[0].workers (app api): 65 is not an integer from 1 to 64; set workers: 1..64"),
    ("workers-bool", {"workers": True}, "pyfleet_apps[0].workers (app api): True is not an integer from 1 to 64; set workers: 1..64"),
    ("threads-range", {"threads": 0}, "pyfleet_apps[0].threads (app api): 0 is not an integer from 1 to 64; set threads: 1..64"),
    ("threads-asgi", {"kind": "asgi", "threads": 4}, "pyfleet_apps[0].threads (app api): 4 threads only apply to wsgi apps; remove threads"),
    ("keep-range", {"keep_releases": 51}, "pyfleet_apps[0].keep_releases (app api): 51 is not an integer from 1 to 50; set keep_releases: 1..50"),
    ("source-two", {"source": {"path": "proj", "wheel": "x.whl"}}, "pyfleet_apps[0].source (app api): expected exactly one of path, wheel, requirement, got a mapping; write source: {path: apps/myapp} or {wheel: dist/x.whl} or {requirement: 'x==1.0'}"),
    ("source-string", {"source": "proj"}, "pyfleet_apps[0].source (app api): expected exactly one of path, wheel, requirement, got a string; write source: {path: apps/myapp} or {wheel: dist/x.whl} or {requirement: 'x==1.0'}"),
    ("source-key", {"source": {"git": "x"}}, "pyfleet_apps[0].source.git (app api): unknown key; allowed keys: path, requirement, wheel"),
    ("source-path-missing", {"source": {"path": "nowhere"}}, "pyfleet_apps[0].source.path (app api): {F}/nowhere is not a directory; point it at the project directory that holds pyproject.toml"),
    ("source-path-noproject", {"source": {"path": "noproject"}}, "pyfleet_apps[0].source.path (app api): {F}/noproject has no pyproject.toml; point it at the project directory that holds pyproject.toml"),
    ("source-wheel-ext", {"source": {"wheel": "dist/proj-0.1.0.zip"}}, "pyfleet_apps[0].source.wheel (app api): 'dist/proj-0.1.0.zip' is neither a .whl nor a .tar.gz sdist; point it at a built wheel or sdist"),
    ("source-wheel-missing", {"source": {"wheel": "dist/gone-1.0-py3-none-any.whl"}}, "pyfleet_apps[0].source.wheel (app api): {F}/dist/gone-1.0-py3-none-any.whl does not exist; build it first (uv build) or fix the path"),
    ("source-req-unpinned", {"source": {"requirement": "proj>=1"}}, "pyfleet_apps[0].source.requirement (app api): 'proj>=1' is not pinned as name==version; write e.g. source.requirement: 'myapp==1.0.0'"),
    ("source-req-empty", {"source": {"requirement": ""}}, "pyfleet_apps[0].source.requirement (app api): is empty; write e.g. source.requirement: 'myapp==1.0.0'"),
    ("req-missing", {"requirements": "nope.txt"}, "pyfleet_apps[0].requirements (app api): {F}/nope.txt does not exist; fix the path or remove requirements"),
    ("req-unpinned", {"requirements": "unpinned.txt"}, "pyfleet_apps[0].requirements (app api): line 3 of unpinned.txt ('flask>=3') is not pinned with ==; pin it (flask==<version>) or regenerate the file with uv pip compile"),
    ("req-option", {"requirements": "option.txt"}, "pyfleet_apps[0].requirements (app api): line 1 of option.txt is an option (--index-url), not a pin; keep only name==version lines (indexes come from pip's own config)"),
    ("req-no-server", {"requirements": "noserver.txt"}, "pyfleet_apps[0].requirements (app api): noserver.txt does not pin gunicorn, which server gunicorn needs for wsgi apps; add gunicorn==<version> and re-pin"),
    ("req-no-uvicorn-worker", {"requirements": "noserver.txt", "kind": "asgi", "server": "gunicorn"}, "pyfleet_apps[0].requirements (app api): noserver.txt does not pin gunicorn, uvicorn-worker, which server gunicorn needs for asgi apps; add gunicorn==<version>, uvicorn-worker==<version> and re-pin"),
    ("env-mapping", {"env": ["A=1"]}, "pyfleet_apps[0].env (app api): expected a mapping of NAME: value, got a list; write env: {NAME: value}"),
    ("env-name", {"env": {"BAD-NAME": "x"}}, "pyfleet_apps[0].env (app api): 'BAD-NAME' is not a valid environment variable name; use letters, digits and _"),
    ("env-bool", {"env": {"DEBUG": False}}, "pyfleet_apps[0].env.DEBUG (app api): expected a string or number, got a boolean; quote it"),
    ("env-reserved", {"env": {"PYFLEET_RELEASE": "x"}}, "pyfleet_apps[0].env.PYFLEET_RELEASE (app api): the PYFLEET_ prefix is reserved for pyfleet; rename the variable"),
    ("env-and-secret", {"env": {"TOKEN": "a"}, "secrets": {"TOKEN": "b"}}, "pyfleet_apps[0].secrets (app api): TOKEN is set in both env and secrets; keep it in one of them"),
    ("static-abs", {"static_dir": "/var/www"}, "pyfleet_apps[0].static_dir (app api): '/var/www' is not a relative path inside the project; write e.g. static_dir: static"),
    ("static-up", {"static_dir": "../x"}, "pyfleet_apps[0].static_dir (app api): '../x' is not a relative path inside the project; write e.g. static_dir: static"),
    ("static-missing", {"static_dir": "assets"}, "pyfleet_apps[0].static_dir (app api): {F}/proj/assets is not a directory; fix static_dir or set it to null"),
    ("static-url", {"static_url": "/static"}, "pyfleet_apps[0].static_url (app api): '/static' does not end with /; set static_url: /static/"),
    ("static-url-rel", {"static_url": "static/"}, "pyfleet_apps[0].static_url (app api): 'static/' is not a URL path starting with /; set e.g. static_url: /static/"),
    ("health", {"health_path": "healthz"}, "pyfleet_apps[0].health_path (app api): 'healthz' is not a URL path starting with /; set e.g. health_path: /healthz"),
    ("domains-string", {"domains": "api.example.com"}, "pyfleet_apps[0].domains (app api): expected a list of host names, got a string; write domains: [app.example.com]"),
    ("domain-syntax", {"domains": ["ok.example.com", "bad_name.example.com"]}, "pyfleet_apps[0].domains[1] (app api): 'bad_name.example.com' is not a valid host name; write e.g. app.example.com"),
    ("domain-dash", {"domains": ["-x.example.com"]}, "pyfleet_apps[0].domains[0] (app api): '-x.example.com' is not a valid host name; write e.g. app.example.com"),
    ("domain-twice", {"domains": ["a.example.com", "A.example.com"]}, "pyfleet_apps[0].domains[1] (app api): a.example.com is listed twice; remove one"),
    ("hooks-key", {"hooks": {"onec": ["x"]}}, "pyfleet_apps[0].hooks.onec (app api): unknown key; did you mean once? allowed keys: every_host, once"),
    ("hooks-list", {"hooks": {"once": "migrate"}}, "pyfleet_apps[0].hooks.once (app api): expected a list of commands, got a string; write once: [\"cmd\"]"),
    ("hooks-cmd", {"hooks": {"every_host": ["ok", 3]}}, "pyfleet_apps[0].hooks.every_host[1] (app api): expected a command string, got a number; write the command as a string"),
    ("user-syntax", {"user": "App User"}, "pyfleet_apps[0].user (app api): 'App User' is not a valid unix user name (at most 32 of a-z 0-9 _ -); set user: app_api"),
    ("user-long", {"user": "u" * 33}, "pyfleet_apps[0].user (app api): '" + "u" * 33 + "' is not a valid unix user name (at most 32 of a-z 0-9 _ -); set user: app_api"),
    ("user-root", {"user": "root"}, "pyfleet_apps[0].user (app api): 'root' is a system or service account; use a dedicated user, e.g. user: app_api"),
    ("user-www", {"user": "www-data"}, "pyfleet_apps[0].user (app api): 'www-data' is a system or service account; use a dedicated user, e.g. user: app_api"),
    ("base-dir-rel", {"base_dir": "srv/api"}, "pyfleet_apps[0].base_dir (app api): 'srv/api' is not an absolute directory at least two levels deep; set e.g. base_dir: /srv/api"),
    ("base-dir-shallow", {"base_dir": "/srv"}, "pyfleet_apps[0].base_dir (app api): '/srv' is not an absolute directory at least two levels deep; set e.g. base_dir: /srv/api"),
    ("hosts", {"hosts": ""}, "pyfleet_apps[0].hosts (app api): '' is not a host pattern; set hosts: web (an inventory group)"),
    ("celery-mapping", {"celery": "proj.tasks:app"}, "pyfleet_apps[0].celery (app api): expected a mapping, got a string; write celery: {app: 'myapp.tasks:app'}"),
    ("celery-app", {"celery": {"app": "proj.tasks"}}, "pyfleet_apps[0].celery.app (app api): 'proj.tasks' is not module:attribute; write e.g. app: myapp.tasks:app"),
    ("relax-list", {"sandbox_relax": "MemoryDenyWriteExecute"}, "pyfleet_apps[0].sandbox_relax (app api): expected a list, got a string; write sandbox_relax: [{option: X, reason: why}]"),
    ("relax-item", {"sandbox_relax": ["MemoryDenyWriteExecute"]}, "pyfleet_apps[0].sandbox_relax[0] (app api): expected a mapping, got a string; write {option: MemoryDenyWriteExecute, reason: why}"),
    ("relax-option", {"sandbox_relax": [{"option": "MemoryDenyWriteExec", "reason": "jit"}]}, "pyfleet_apps[0].sandbox_relax[0].option (app api): 'MemoryDenyWriteExec' is not a hardening option pyfleet sets; did you mean MemoryDenyWriteExecute? one of: " + ", ".join(SANDBOX_OPTIONS)),
    ("relax-reason", {"sandbox_relax": [{"option": "PrivateTmp"}]}, "pyfleet_apps[0].sandbox_relax[0].reason (app api): dropping PrivateTmp needs a reason; add reason: why the app needs it"),
    ("relax-key", {"sandbox_relax": [{"option": "PrivateTmp", "reason": "x", "why": "y"}]}, "pyfleet_apps[0].sandbox_relax[0].why (app api): unknown key; allowed keys: option, reason"),
    ("relax-twice", {"sandbox_relax": [{"option": "PrivateTmp", "reason": "x"}, {"option": "PrivateTmp", "reason": "y"}]}, "pyfleet_apps[0].sandbox_relax[1].option (app api): PrivateTmp is listed twice; remove one"),
]  # fmt: skip  # one case per line: name, override, the exact one-line message


@pytest.mark.parametrize("overrides, expected", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_each_mistake_is_one_line_with_path_and_fix(overrides, expected):
    assert error(spec(**overrides)) == expected.replace("{F}", str(FIXTURES.resolve()))


@pytest.mark.parametrize(
    "apps, expected",
    [
        (
            "web",
            "pyfleet_apps: expected a list of app mappings, got a string; write pyfleet_apps: [{name: myapp, ...}]",
        ),
        (["api"], "pyfleet_apps[0]: expected a mapping, got a string; write it as {name: myapp, ...}"),
    ],
)
def test_the_variable_itself_must_be_a_list_of_mappings(apps, expected):
    with pytest.raises(PyfleetError) as caught:
        normalize_apps(apps)
    assert str(caught.value) == expected


def test_bad_cpus_is_reported():
    assert error(spec(), cpus=0) == "cpus: 0 is not a positive integer; pass the host's CPU count"


# --- conflicts between apps ------------------------------------------------------


def test_duplicate_names():
    assert error(spec(), spec(domains=["other.example.com"])) == (
        "pyfleet_apps[1].name: app name api is already used by pyfleet_apps[0]; give each app a unique name"
    )


def test_two_apps_claiming_one_domain_names_both():
    assert error(spec(), spec(name="web", domains=["www.example.com", "API.example.com"])) == (
        "pyfleet_apps[1].domains (app web): apps api and web both claim domain api.example.com; "
        "give each app its own domain"
    )


def test_two_apps_with_one_user():
    assert error(spec(user="svc"), spec(name="web", user="svc", domains=["web.example.com"])) == (
        "pyfleet_apps[1].user (app web): apps api and web both claim user svc; give each app its own user"
    )


def test_two_apps_with_one_base_dir():
    second = spec(name="web", base_dir="/srv/api", domains=["web.example.com"])
    assert error(spec(), second) == (
        "pyfleet_apps[1].base_dir (app web): apps api and web both claim base_dir /srv/api; "
        "give each app its own base_dir"
    )


def test_error_points_at_the_right_index():
    good = spec(name="web", domains=["web.example.com"])
    assert error(good, spec(kind="cgi")).startswith("pyfleet_apps[1].kind (app api): 'cgi'")


# --- the Ansible filter ----------------------------------------------------------


def _load_filter():
    """Import plugins/filter/pyfleet_apps.py the way Ansible does (by path)."""
    path = ROOT / "plugins" / "filter" / "pyfleet_apps.py"
    module_spec = importlib.util.spec_from_file_location("pyfleet_apps_filter", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_filter_gives_the_server_processes_of_an_app():
    filters = _load_filter().FilterModule().filters()
    (app,) = norm(spec())
    assert filters["pyfleet_app_workers"](app, 2) == 5  # gunicorn sync: 2 * cpus + 1
    assert filters["pyfleet_app_workers"](app, "3") == 7  # a fact may come as a string


# --- the entry's module is in the app's own source (checked before a deploy's lock) -----


def test_entry_module_missing_from_the_project_is_refused():
    sample = {"path": str(ROOT / "examples" / "sampleapp")}
    assert norm(spec(source=sample, entry="sampleapp.wsgi:app"))[0]["module"] == "sampleapp.wsgi"
    assert error(spec(source=sample, entry="sampleapp.nowhere:app")) == (
        "pyfleet_apps[0].entry (app api): module sampleapp.nowhere is not in the app's source "
        "(no sampleapp/nowhere.py or sampleapp/nowhere/__init__.py); fix entry to name a module of the app"
    )


def test_entry_module_of_a_dependency_is_left_to_the_build():
    (app,) = norm(spec(entry="otherpkg.wsgi:app"))
    assert app["entry"] == "otherpkg.wsgi:app"


def test_entry_module_missing_from_a_wheel_is_refused(tmp_path):
    import zipfile

    wheel = tmp_path / "api-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("api/__init__.py", "")
        archive.writestr("api/wsgi.py", "app = None\n")
    assert norm(spec(source={"wheel": str(wheel)}, entry="api.wsgi:app"))[0]["entry"] == "api.wsgi:app"
    assert "module api.asgi is not in the app's source" in error(
        spec(source={"wheel": str(wheel)}, entry="api.asgi:app")
    )


# --- accounts -------------------------------------------------------------------


def test_each_app_gets_a_system_group_and_user_and_nginx_joins_the_served_groups():
    from pyfleet.apps import accounts

    api, worker_only = norm(spec(), spec(name="jobs", domains=["jobs.example.com"]))
    worker_only = {**worker_only, "web": False}  # the plan's mark: only its Celery workers run here
    made = accounts([api, worker_only], "www-data")
    assert made["groups"] == [{"name": "app_api", "system": True}, {"name": "app_jobs", "system": True}]
    assert made["users"][0] == {
        "name": "app_api",
        "group": "app_api",
        "system": True,
        "shell": "/usr/sbin/nologin",
        "home": api["base_dir"],
        "create_home": False,
    }
    assert [u["name"] for u in made["users"]] == ["app_api", "app_jobs", "www-data"]
    assert made["users"][-1] == {"name": "www-data", "groups": ["app_api"], "append": True}
    # A worker-only host (no nginx user), or nothing served: nginx's user is not named.
    assert [u["name"] for u in accounts([api], "")["users"]] == ["app_api"]
    assert [u["name"] for u in accounts([worker_only], "www-data")["users"]] == ["app_jobs"]
    assert accounts([], "www-data") == {"groups": [], "users": []}
