"""Check and normalise the inventory's app specs (``pyfleet_apps``).

``normalize_apps`` turns the list the inventory gives into complete app dicts
(defaults filled, paths resolved, derived names added), or stops at the first
mistake with a one-line ``PyfleetError`` that names the variable path, the app,
what is wrong and the fix, for example::

    pyfleet_apps[1].kind (app api): 'wsgx' is not one of wsgi, asgi; set kind: wsgi or kind: asgi

The spec of one app (only ``name``, ``source``, ``kind``, ``entry`` and
``domains`` are required)::

    - name: api                      # [a-z][a-z0-9-]{0,30}, unique
      source: {path: apps/api}       # or {wheel: dist/api-1.0-py3-none-any.whl}
                                     # or {requirement: "api==1.0"}
      requirements: apps/api/requirements.txt   # every line pinned with ==
      kind: wsgi                     # wsgi | asgi
      entry: api.wsgi:app            # module:callable
      server: gunicorn               # wsgi: gunicorn; asgi: uvicorn (default) | gunicorn
      workers: 4                     # 1..64; default 2*cpus+1 (gunicorn sync), cpus (async)
      threads: 1                     # 1..64, wsgi only (>1: gunicorn gthread workers)
      env: {LOG_LEVEL: info}
      secrets: {DB_PASSWORD: "{{ vault_db_password }}"}
      static_dir: static             # inside the source project, or null
      static_url: /static/
      domains: [api.example.com]
      health_path: /healthz
      hooks: {once: ["flask db upgrade"], every_host: []}
      user: app_api                  # default app_<name, '-' as '_'>
      base_dir: /srv/api
      keep_releases: 5               # 1..50
      hosts: web                     # inventory group or pattern
      celery: {app: "api.tasks:app"} # passed through to the Celery tier
      sandbox_relax:
        - {option: MemoryDenyWriteExecute, reason: "cffi callbacks"}

Secret values never appear in an error message, nor in the repr of a
normalised app.
"""

import difflib
import hashlib
import keyword
import re
import tarfile
import zipfile
from pathlib import Path

from pyfleet.errors import PyfleetError
from pyfleet.sandbox import RELAXABLE
from pyfleet.values import is_int as _is_int, kind_of as _kind, unknown_key

VAR = "pyfleet_apps"

KINDS = ("wsgi", "asgi")
# Which servers may run which kind; the first one is the default. Standalone
# uvicorn is the ASGI default: the zero-downtime switch starts a new instance
# on a second socket, so gunicorn's HUP is not needed (HUP is not clean for
# UvicornWorker anyway: under load it reset connections and POSTs got 502) and
# uvicorn alone has one moving part less.
SERVERS = {"wsgi": ("gunicorn",), "asgi": ("uvicorn", "gunicorn")}
# Packages the release venv must contain for each (kind, server).
SERVER_PACKAGES = {
    ("wsgi", "gunicorn"): ("gunicorn",),
    ("asgi", "uvicorn"): ("uvicorn",),
    ("asgi", "gunicorn"): ("gunicorn", "uvicorn-worker"),
}

# The hardening options pyfleet's units set (pyfleet/sandbox.py); sandbox_relax may drop these only.
SANDBOX_OPTIONS = RELAXABLE

# Users an app must never run as: root, system accounts and the other services'.
RESERVED_USERS = frozenset(
    [
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "backup",
        "list",
        "irc",
        "gnats",
        "nobody",
        "nogroup",
        "systemd-network",
        "systemd-resolve",
        "systemd-timesync",
        "messagebus",
        "sshd",
        "_apt",
        "nginx",
        "redis",
        "rabbitmq",
        "postgres",
        "mysql",
        "celery",
    ]
)

KEYS = (
    "name",
    "source",
    "requirements",
    "kind",
    "entry",
    "server",
    "workers",
    "threads",
    "env",
    "secrets",
    "static_dir",
    "static_url",
    "domains",
    "health_path",
    "hooks",
    "user",
    "base_dir",
    "keep_releases",
    "hosts",
    "celery",
    "sandbox_relax",
)
REQUIRED = ("name", "source", "kind", "entry", "domains")
SOURCE_KEYS = ("path", "wheel", "requirement")
HOOK_KEYS = ("once", "every_host")
RELAX_KEYS = ("option", "reason")

NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")
USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
PKG_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
REQ_RE = re.compile(
    r"(?P<name>[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?P<extras>\[[^\]]*\])?\s*"
    r"(?P<op>===|==)\s*(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)\s*(;.*)?"
)
MAX_USER = 32
MAX_WORKERS = 64


class AppSpec(dict):
    """A normalised app: a plain dict whose repr hides the secret values."""

    def __repr__(self):
        shown = dict(self)
        if shown.get("secrets"):
            shown["secrets"] = dict.fromkeys(shown["secrets"], "***")
        return f"AppSpec({shown!r})"

    __str__ = __repr__


class _Where:
    """Where we are in the inventory: builds the one-line errors."""

    def __init__(self, index, name=None):
        self.index = index
        self.name = name

    def fail(self, key, problem, fix):
        """Raise PyfleetError "<path> (app <name>): <problem>; <fix>"."""
        path = f"{VAR}[{self.index}]" + (f".{key}" if key else "")
        app = f" (app {self.name})" if self.name else ""
        raise PyfleetError(f"{path}{app}: {problem}; {fix}")


def normalize_apps(apps, cpus=None, project_dir=".", check_paths=True):
    """Validate ``pyfleet_apps`` and return the apps as complete dicts.

    ``apps``: the inventory variable, a list of mappings (None means no apps).
    ``cpus``: the host's CPU count; when given, ``workers`` is computed for
    that host, else apps without an explicit ``workers`` keep None and
    ``workers_for(app, cpus)`` computes it per host.
    ``project_dir``: what relative ``source``/``requirements`` paths are
    relative to (the directory holding the inventory's project).
    ``check_paths``: check that local sources and requirements files exist
    (turn off only where the controller's files are not at hand).

    Returns a list of ``AppSpec`` dicts in inventory order. Raises
    PyfleetError (one line: variable path, app, problem, fix) at the first
    mistake, including conflicts between apps (names, users, domains,
    base_dir).
    """
    if apps is None:
        return []
    if not isinstance(apps, list):
        raise PyfleetError(
            f"{VAR}: expected a list of app mappings, got {_kind(apps)}; write {VAR}: [{{name: myapp, ...}}]"
        )
    if cpus is not None and (not _is_int(cpus) or cpus < 1):
        raise PyfleetError(f"cpus: {cpus!r} is not a positive integer; pass the host's CPU count")
    base = Path(project_dir)
    result = [_normalize_one(i, spec, cpus, base, check_paths) for i, spec in enumerate(apps)]
    _check_conflicts(result)
    return result


def workers_for(app, cpus):
    """How many server processes ``app`` runs on a host with ``cpus`` CPUs.

    An explicit ``workers`` wins. Otherwise: 2*cpus+1 for gunicorn's sync or
    gthread workers (they block on I/O), cpus for async servers (uvicorn, or
    gunicorn with UvicornWorker); at most 64.
    """
    if not _is_int(cpus) or cpus < 1:
        raise PyfleetError(
            f"{app.get('name', 'app')}: cpus {cpus!r} is not a positive integer; "
            "pass the host's CPU count (ansible_processor_vcpus)"
        )
    if app.get("workers"):
        return app["workers"]
    sync = app["kind"] == "wsgi" and app["server"] == "gunicorn"
    return min(2 * cpus + 1 if sync else cpus, MAX_WORKERS)


def accounts(apps, nginx_user):
    """The system accounts a host's ``apps`` need, as group and user module arguments: {groups, users}.

    Each app gets a system group and a system user of that group, without login or
    home directory (its base_dir is the home it names). The nginx user (none where it
    is "": a worker-only host) joins the groups of the apps it serves (``web`` not
    false), keeping the groups it has.
    """
    groups = [{"name": app["group"], "system": True} for app in apps]
    users = [
        {
            "name": app["user"],
            "group": app["group"],
            "system": True,
            "shell": "/usr/sbin/nologin",
            "home": app["base_dir"],
            "create_home": False,
        }
        for app in apps
    ]
    served = [app["group"] for app in apps if app.get("web", True) is not False]
    if served and nginx_user:
        users.append({"name": nginx_user, "groups": served, "append": True})
    return {"groups": groups, "users": users}


def default_user(name):
    """The default unix user of app ``name``: ``app_<name with - as _>``.

    Names too long for a 32-character user name are cut and given a short
    hash of the full name, so two long names still get distinct users.
    """
    user = "app_" + name.replace("-", "_")
    if len(user) > MAX_USER:
        digest = hashlib.sha256(name.encode()).hexdigest()[:6]
        user = user[: MAX_USER - 7] + "_" + digest
    return user


# --- one app -----------------------------------------------------------------


def _normalize_one(index, spec, cpus, base, check_paths):
    """Validate one app spec and return its AppSpec."""
    where = _Where(index)
    if not isinstance(spec, dict):
        where.fail(None, f"expected a mapping, got {_kind(spec)}", "write it as {name: myapp, ...}")
    name = _name(where, spec)
    where.name = name
    _unknown_keys(where, None, spec, KEYS)
    for key in REQUIRED:
        if spec.get(key) in (None, "", [], {}):
            where.fail(key, "is missing", f"add {key}: {_example(key)}")

    kind = _choice(where, "kind", spec["kind"], KINDS)
    server = spec.get("server") or SERVERS[kind][0]
    if server not in SERVERS[kind]:
        allowed = " or ".join(f"server: {s}" for s in SERVERS[kind])
        where.fail("server", f"{server!r} cannot serve {kind} apps", f"use {allowed}")
    module, func = _entry(where, spec["entry"])
    threads = _int_range(where, "threads", spec.get("threads", 1), 1, MAX_WORKERS, 1)
    if threads > 1 and kind != "wsgi":
        where.fail("threads", f"{threads} threads only apply to wsgi apps", "remove threads")
    source = _source(where, spec["source"], base, check_paths)
    if check_paths:
        _entry_in_source(where, module, source)
    app = AppSpec(
        name=name,
        source=source,
        requirements=_requirements(where, spec.get("requirements"), base, check_paths),
        kind=kind,
        entry=f"{module}:{func}",
        module=module,
        callable=func,
        server=server,
        worker_class=_worker_class(kind, server, threads),
        workers=_int_range(where, "workers", spec.get("workers"), 1, MAX_WORKERS, None),
        threads=threads,
        env=_env(where, "env", spec.get("env"), secret=False),
        secrets=_env(where, "secrets", spec.get("secrets"), secret=True),
        static_dir=_static_dir(where, spec.get("static_dir"), source, check_paths),
        static_url=_url_path(where, "static_url", spec.get("static_url", "/static/"), True),
        domains=_domains(where, spec["domains"]),
        health_path=_url_path(where, "health_path", spec.get("health_path", "/healthz"), False),
        hooks=_hooks(where, spec.get("hooks")),
        keep_releases=_int_range(where, "keep_releases", spec.get("keep_releases", 5), 1, 50, 5),
        hosts=_hosts(where, spec.get("hosts", "web")),
        celery=_celery(where, spec.get("celery")),
        sandbox_relax=_sandbox_relax(where, spec.get("sandbox_relax")),
    )
    both = sorted(set(app["env"]) & set(app["secrets"]))
    if both:
        where.fail("secrets", f"{both[0]} is set in both env and secrets", "keep it in one of them")
    _server_packages(where, app)
    user = _user(where, spec.get("user"), name)
    base_dir = _base_dir(where, spec.get("base_dir"), name)
    app.update(
        user=user,
        group=user,
        base_dir=base_dir,
        releases_dir=f"{base_dir}/releases",
        shared_dir=f"{base_dir}/shared",
        current_link=f"{base_dir}/current",
        socket_dir=f"/run/{name}",
        # The systemd unit base name: roles add ".service" or "@<slot>.service".
        unit_name=f"pyfleet-{name}",
        # The nginx upstream of the app, on its web hosts and on the load balancers.
        upstream="pyfleet_" + name.replace("-", "_"),
    )
    if cpus is not None and app["workers"] is None:
        app["workers"] = workers_for(app, cpus)
    return app


def _name(where, spec):
    """The app's name: required, [a-z][a-z0-9-]{0,30}."""
    name = spec.get("name")
    if name in (None, ""):
        where.fail("name", "is missing", "add name: myapp (lowercase letters, digits, '-')")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        suggestion = re.sub(r"[^a-z0-9-]+", "-", str(name).lower()).strip("-")
        suggestion = suggestion if NAME_RE.fullmatch(suggestion or "-") else "myapp"
        where.fail(
            "name",
            f"{name!r} is not a valid app name (a lowercase letter, then up to 30 lowercase letters, digits or '-')",
            f"rename it, e.g. name: {suggestion}",
        )
    return name


def _unknown_keys(where, key, mapping, allowed):
    """Reject keys not in ``allowed``, suggesting the closest one (typos)."""
    found = unknown_key(mapping, allowed)
    if found:
        unknown, fix = found
        where.fail(f"{key}.{unknown}" if key else unknown, "unknown key", fix)


def _choice(where, key, value, allowed):
    """``value`` must be one of ``allowed``."""
    if value not in allowed:
        fix = " or ".join(f"{key}: {a}" for a in allowed)
        where.fail(key, f"{value!r} is not one of {', '.join(allowed)}", f"set {fix}")
    return value


def _entry(where, entry):
    """Split ``module:callable`` after checking both are dotted identifiers."""
    if not isinstance(entry, str) or entry.count(":") != 1:
        where.fail("entry", f"{entry!r} is not module:callable", "write e.g. entry: myapp.wsgi:app")
    module, func = entry.split(":")
    for part, what in ((module, "module"), (func, "callable")):
        names = part.split(".")
        if not all(IDENT_RE.fullmatch(n) and not keyword.iskeyword(n) for n in names):
            where.fail(
                "entry",
                f"{what} {part!r} in {entry!r} is not a dotted Python name",
                "write e.g. entry: myapp.wsgi:app",
            )
    return module, func


def _int_range(where, key, value, low, high, default):
    """An integer in low..high; None gives ``default``."""
    if value is None:
        return default
    if not _is_int(value) or not low <= value <= high:
        where.fail(key, f"{value!r} is not an integer from {low} to {high}", f"set {key}: {low}..{high}")
    return value


def _worker_class(kind, server, threads):
    """The gunicorn worker class, or None for standalone uvicorn."""
    if server != "gunicorn":
        return None
    if kind == "asgi":
        return "uvicorn_worker.UvicornWorker"
    return "gthread" if threads > 1 else "sync"


def _source(where, source, base, check_paths):
    """``{path|wheel|requirement: ...}`` → ``{"type": ..., <type>: ...}`` with paths absolute."""
    if not isinstance(source, dict) or len(source) != 1:
        where.fail(
            "source",
            f"expected exactly one of {', '.join(SOURCE_KEYS)}, got {_kind(source)}",
            "write source: {path: apps/myapp} or {wheel: dist/x.whl} or {requirement: 'x==1.0'}",
        )
    _unknown_keys(where, "source", source, SOURCE_KEYS)
    ((kind, value),) = source.items()
    key = f"source.{kind}"
    if not isinstance(value, str) or not value.strip():
        problem = "is empty" if isinstance(value, str) else f"expected a string, got {_kind(value)}"
        where.fail(key, problem, f"write e.g. {key}: {_SOURCE_EXAMPLES[kind]}")
    if kind == "requirement":
        match = REQ_RE.fullmatch(value.strip())
        if not match or ";" in value:
            where.fail(
                key,
                f"{value!r} is not pinned as name==version",
                f"write e.g. {key}: {_SOURCE_EXAMPLES[kind]}",
            )
        return {
            "type": "requirement",
            "requirement": f"{match['name']}{match['extras'] or ''}=={match['version']}",
            "name": match["name"],
            "version": match["version"],
        }
    path = _resolve(base, value)
    if kind == "path":
        if check_paths and not (path / "pyproject.toml").is_file():
            problem = "has no pyproject.toml" if path.is_dir() else "is not a directory"
            where.fail(key, f"{path} {problem}", "point it at the project directory that holds pyproject.toml")
    else:
        if not value.endswith((".whl", ".tar.gz")):
            where.fail(key, f"{value!r} is neither a .whl nor a .tar.gz sdist", "point it at a built wheel or sdist")
        if check_paths and not path.is_file():
            where.fail(key, f"{path} does not exist", "build it first (uv build) or fix the path")
    return {"type": kind, kind: str(path)}


def _entry_in_source(where, module, source):
    """The entry's module is in the app's own source (a project directory, wheel or sdist).

    Checked on the controller before a deploy takes its lock. A module whose
    top-level package is not in the source at all (a dependency provides it), a
    source pinned from an index, or an archive that does not open is left to the
    build's import check.
    """
    relative = module.replace(".", "/")
    wanted = (f"{relative}.py", f"{relative}/__init__.py")
    top = module.split(".")[0]
    names = _source_files(source, top)
    if names is None or not any(n == f"{top}.py" or n.startswith(f"{top}/") for n in names):
        return
    if not any(name in names for name in wanted):
        where.fail(
            "entry",
            f"module {module} is not in the app's source (no {wanted[0]} or {wanted[1]})",
            "fix entry to name a module of the app",
        )


def _source_files(source, top):
    """Paths of the Python files a source ships (of package ``top``, for a directory), relative
    to its import root; None when unknown."""
    if source["type"] == "path":
        root = Path(source["path"])
        found = set()
        for r in (root, root / "src"):
            if (r / f"{top}.py").is_file():
                found.add(f"{top}.py")
            found |= {str(p.relative_to(r)) for p in (r / top).glob("**/*.py")} if (r / top).is_dir() else set()
        return found
    try:
        if source["type"] == "wheel" and source["wheel"].endswith(".whl"):
            with zipfile.ZipFile(source["wheel"]) as wheel:
                return set(wheel.namelist())
        if source["type"] == "wheel":
            with tarfile.open(source["wheel"]) as sdist:
                inner = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
            return set(inner) | {name[4:] for name in inner if name.startswith("src/")}
    except (OSError, zipfile.BadZipFile, tarfile.TarError):
        return None
    return None


def _requirements(where, value, base, check_paths):
    """An optional requirements file whose every requirement is pinned with ==."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        where.fail(
            "requirements",
            f"expected a file path, got {_kind(value)}",
            "set requirements: path/to/requirements.txt",
        )
    path = _resolve(base, value)
    if not check_paths:
        return str(path)
    if not path.is_file():
        where.fail("requirements", f"{path} does not exist", "fix the path or remove requirements")
    for number, line in requirement_lines(path.read_text(encoding="utf-8")):
        if line.startswith("-"):
            where.fail(
                "requirements",
                f"line {number} of {path.name} is an option ({line.split()[0]}), not a pin",
                "keep only name==version lines (indexes come from pip's own config)",
            )
        if not REQ_RE.fullmatch(line.split(" --hash")[0].strip()):
            name = re.match(r"[A-Za-z0-9._-]+", line)
            example = f"{name.group(0)}==<version>" if name else "name==version"
            where.fail(
                "requirements",
                f"line {number} of {path.name} ({line!r}) is not pinned with ==",
                f"pin it ({example}) or regenerate the file with uv pip compile",
            )
    return str(path)


def requirement_lines(text):
    """Yield (line number, requirement) from a requirements file's text.

    Joins backslash continuations (hash lines of pip-compile) and drops
    comments and blank lines.
    """
    pending, start = "", None
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*", "", raw).rstrip()
        if start is None:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending, first = "", start
        start = None
        if full:
            yield first, full


def pinned_names(path):
    """The normalised project names a pinned requirements file lists."""
    names = set()
    for _, line in requirement_lines(Path(path).read_text(encoding="utf-8")):
        match = REQ_RE.fullmatch(line.split(" --hash")[0].strip())
        if match:
            names.add(canonical_name(match["name"]))
    return names


def canonical_name(name):
    """PEP 503 normalised project name (Flask_Login → flask-login)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _server_packages(where, app):
    """The pinned requirements must include the packages the server needs."""
    if not app["requirements"] or not Path(app["requirements"]).is_file():
        return
    missing = [p for p in SERVER_PACKAGES[(app["kind"], app["server"])] if p not in pinned_names(app["requirements"])]
    if missing:
        where.fail(
            "requirements",
            f"{Path(app['requirements']).name} does not pin {', '.join(missing)}, "
            f"which server {app['server']} needs for {app['kind']} apps",
            f"add {', '.join(m + '==<version>' for m in missing)} and re-pin",
        )


def _env(where, key, value, secret):
    """A mapping of environment variable names to strings (numbers allowed)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        where.fail(key, f"expected a mapping of NAME: value, got {_kind(value)}", f"write {key}: {{NAME: value}}")
    result = {}
    for name, val in value.items():
        if not isinstance(name, str) or not ENV_RE.fullmatch(name):
            where.fail(key, f"{name!r} is not a valid environment variable name", "use letters, digits and _")
        if name.startswith("PYFLEET_"):
            where.fail(f"{key}.{name}", "the PYFLEET_ prefix is reserved for pyfleet", "rename the variable")
        # bool is an int subclass: a YAML yes/no almost always meant a string.
        if isinstance(val, bool) or not isinstance(val, (str, int, float)):
            shown = "a value" if secret else _kind(val)
            where.fail(f"{key}.{name}", f"expected a string or number, got {shown}", "quote it")
        result[name] = str(val)
    return result


def _static_dir(where, value, source, check_paths):
    """A relative directory inside the source project, or None."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or value.startswith("/") or ".." in Path(value).parts:
        where.fail(
            "static_dir",
            f"{value!r} is not a relative path inside the project",
            "write e.g. static_dir: static",
        )
    if check_paths and source["type"] == "path" and not (Path(source["path"]) / value).is_dir():
        where.fail(
            "static_dir",
            f"{Path(source['path']) / value} is not a directory",
            "fix static_dir or set it to null",
        )
    return value.rstrip("/")


def _url_path(where, key, value, directory):
    """A URL path starting with / (and ending with / for a directory)."""
    ok = isinstance(value, str) and value.startswith("/") and not re.search(r"\s|[?#]", value)
    if ok and directory and not value.endswith("/"):
        where.fail(key, f"{value!r} does not end with /", f"set {key}: {value}/")
    if not ok:
        example = "/static/" if directory else "/healthz"
        where.fail(key, f"{value!r} is not a URL path starting with /", f"set e.g. {key}: {example}")
    return value


def _domains(where, value):
    """At least one valid host name (lower-cased); ``*.`` wildcards allowed."""
    if not isinstance(value, list) or not value:
        where.fail(
            "domains",
            f"expected a list of host names, got {_kind(value)}",
            "write domains: [app.example.com]",
        )
    result = []
    for i, domain in enumerate(value):
        name = domain.lower().rstrip(".") if isinstance(domain, str) else ""
        labels = name.split(".")
        if labels[0] == "*":
            labels = labels[1:]
        if len(name) > 253 or not labels or not all(LABEL_RE.fullmatch(label) for label in labels):
            where.fail(f"domains[{i}]", f"{domain!r} is not a valid host name", "write e.g. app.example.com")
        if name in result:
            where.fail(f"domains[{i}]", f"{name} is listed twice", "remove one")
        result.append(name)
    return result


def _hooks(where, value):
    """``{once: [cmd], every_host: [cmd]}``; both default to empty lists."""
    if value is None:
        return {"once": [], "every_host": []}
    if not isinstance(value, dict):
        where.fail(
            "hooks",
            f"expected a mapping, got {_kind(value)}",
            "write hooks: {once: [cmd], every_host: [cmd]}",
        )
    _unknown_keys(where, "hooks", value, HOOK_KEYS)
    result = {}
    for key in HOOK_KEYS:
        commands = value.get(key) or []
        if not isinstance(commands, list):
            where.fail(f"hooks.{key}", f"expected a list of commands, got {_kind(commands)}", f'write {key}: ["cmd"]')
        for i, command in enumerate(commands):
            if not isinstance(command, str) or not command.strip():
                where.fail(
                    f"hooks.{key}[{i}]",
                    f"expected a command string, got {_kind(command)}",
                    "write the command as a string",
                )
        result[key] = list(commands)
    return result


def _hosts(where, value):
    """The inventory group or host pattern the app runs on."""
    if not isinstance(value, str) or not value.strip() or re.search(r"\s", value):
        where.fail("hosts", f"{value!r} is not a host pattern", "set hosts: web (an inventory group)")
    return value


def _celery(where, value):
    """Passed through to the Celery tier; only ``app``'s syntax is checked here."""
    if value is None:
        return None
    if not isinstance(value, dict):
        where.fail("celery", f"expected a mapping, got {_kind(value)}", "write celery: {app: 'myapp.tasks:app'}")
    if "app" in value:
        target = value["app"]
        ok = (
            isinstance(target, str)
            and target.count(":") == 1
            and all(all(IDENT_RE.fullmatch(n) for n in part.split(".")) for part in target.split(":"))
        )
        if not ok:
            where.fail("celery.app", f"{target!r} is not module:attribute", "write e.g. app: myapp.tasks:app")
    return dict(value)


def _sandbox_relax(where, value):
    """A list of ``{option, reason}``: hardening options this app runs without."""
    if value is None:
        return []
    if not isinstance(value, list):
        where.fail(
            "sandbox_relax",
            f"expected a list, got {_kind(value)}",
            "write sandbox_relax: [{option: X, reason: why}]",
        )
    result, seen = [], set()
    for i, item in enumerate(value):
        key = f"sandbox_relax[{i}]"
        if not isinstance(item, dict):
            where.fail(
                key,
                f"expected a mapping, got {_kind(item)}",
                "write {option: MemoryDenyWriteExecute, reason: why}",
            )
        _unknown_keys(where, key, item, RELAX_KEYS)
        option = item.get("option")
        if option not in SANDBOX_OPTIONS:
            close = difflib.get_close_matches(str(option), SANDBOX_OPTIONS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            where.fail(
                f"{key}.option",
                f"{option!r} is not a hardening option pyfleet sets",
                f"{hint}one of: {', '.join(SANDBOX_OPTIONS)}",
            )
        reason = item.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            where.fail(f"{key}.reason", f"dropping {option} needs a reason", "add reason: why the app needs it")
        if option in seen:
            where.fail(f"{key}.option", f"{option} is listed twice", "remove one")
        seen.add(option)
        result.append({"option": option, "reason": reason.strip()})
    return result


def _user(where, value, name):
    """The app's unix user: valid, at most 32 characters, not a system account."""
    if value is None:
        return default_user(name)
    if not isinstance(value, str) or not USER_RE.fullmatch(value):
        where.fail(
            "user",
            f"{value!r} is not a valid unix user name (at most {MAX_USER} of a-z 0-9 _ -)",
            f"set user: {default_user(name)}",
        )
    if value in RESERVED_USERS:
        where.fail(
            "user",
            f"{value!r} is a system or service account",
            f"use a dedicated user, e.g. user: {default_user(name)}",
        )
    return value


def _base_dir(where, value, name):
    """An absolute directory owned by this app alone; default /srv/<name>."""
    if value is None:
        return f"/srv/{name}"
    parts = Path(value).parts if isinstance(value, str) else ()
    if not isinstance(value, str) or not value.startswith("/") or ".." in parts or len(parts) < 3:
        where.fail(
            "base_dir",
            f"{value!r} is not an absolute directory at least two levels deep",
            f"set e.g. base_dir: /srv/{name}",
        )
    return value.rstrip("/")


def _check_conflicts(apps):
    """No two apps may share a name, user, base_dir or domain."""
    seen = {"name": {}, "user": {}, "base_dir": {}, "domain": {}}
    for index, app in enumerate(apps):
        claims = [("name", app["name"]), ("user", app["user"]), ("base_dir", app["base_dir"])]
        claims += [("domain", d) for d in app["domains"]]
        for what, value in claims:
            other = seen[what].get(value)
            if other is not None and what == "name":
                raise PyfleetError(
                    f"{VAR}[{index}].name: app name {value} is already used by {VAR}[{other[0]}]; "
                    "give each app a unique name"
                )
            if other is not None:
                key = "domains" if what == "domain" else what
                raise PyfleetError(
                    f"{VAR}[{index}].{key} (app {app['name']}): apps {other[1]} and {app['name']} "
                    f"both claim {what} {value}; give each app its own {what}"
                )
            seen[what][value] = (index, app["name"])


# --- small helpers -------------------------------------------------------------


def _resolve(base, value):
    """``value`` as an absolute path, relative ones taken from ``base``."""
    path = Path(value).expanduser()
    return (path if path.is_absolute() else Path(base).resolve() / path).resolve()


_EXAMPLES = {
    "name": "myapp",
    "source": "{path: apps/myapp}",
    "kind": "wsgi",
    "entry": "myapp.wsgi:app",
    "domains": "[myapp.example.com]",
}
_SOURCE_EXAMPLES = {
    "path": "apps/myapp",
    "wheel": "dist/myapp-1.0.0-py3-none-any.whl",
    "requirement": "'myapp==1.0.0'",
}


def _example(key):
    """An example value for a missing required key."""
    return _EXAMPLES.get(key, "...")
