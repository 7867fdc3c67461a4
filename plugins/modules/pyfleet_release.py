#!/usr/bin/python
"""pyfleet_release: build, switch, roll back and prune an app's releases on a web or worker host."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import tarfile
import time
import zipfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: pyfleet_release
short_description: Releases of a pyfleet app on one host - build, health-gated switch, prune
version_added: "0.1.0"
author: pyfleet
description:
  - One module call per step of a release, because each Ansible task costs about
    half a second here and the switch must undo itself as a whole on failure.
  - C(action=info) reports the host's Python, architecture, glibc and CPUs, and
    for each app its current release, its releases (with the artifact hash each
    was built from) and its unpacked wheelhouses.
  - C(action=build) unpacks a shipped artifact (wheelhouse + static files) and
    builds C(releases/<id>) with its own venv, offline, with uv or pip. When the
    current release was built from the same artifact and the same config files,
    nothing is built (C(new=false)), so a deploy of unchanged code is a no-op;
    when another release here was (the id C(release) proposes), the host
    switches to it instead of building (C(built=false)).
  - C(action=activate) starts the systemd instance C(<unit>@<id>) beside the
    running one, waits for its health path over its unix socket, points the
    nginx upstream include at the new socket (C(nginx -t), reload), checks
    health through nginx, switches C(current) atomically, enables the new
    instance, stops the old one warmly and prunes to C(keep_releases). On any
    failure everything is put back, the new release is removed (unless
    C(remove_on_failure=false), as for rollbacks) and the module fails with one
    line naming the host, the app and the reason.
  - C(action=activate) with C(celery_app) instead of C(unit) is the switch of a
    host that runs only the app's Celery workers (no app instance, no nginx)
    - the release's venv must import the Celery app (as the app's user, with
    C(env_file)) before C(current) moves; then it prunes like the web switch.
    Restarting the workers is the caller's job. A refused release leaves
    C(current) as it was.
  - Only directories named by a release id and holding the metadata a finished
    build writes are releases; C(previous) and pruning never see anything else.
  - C(action=absent) removes one release that is not current.
options:
  action:
    description: What to do.
    type: str
    required: true
    choices: [info, build, activate, absent]
  app:
    description: The app's name (for messages).
    type: str
  apps:
    description: For C(info) - a mapping of app name to base_dir.
    type: dict
    default: {}
  config_files_of:
    description:
      - For C(info) - a mapping of app name to its C(config_files) (as C(build) gets them).
        The answer then says whether the current release was built with the config
        these files hold now (C(config_current)).
    type: dict
    default: {}
  base_dir:
    description: The app's base directory (C(/srv/<app>)).
    type: path
  release:
    description:
      - The release id, a UTC stamp like C(20261124T051900Z). For C(activate),
        C(previous) means the newest release older than the current one.
    type: str
  new_release:
    description:
      - For C(build) - the deploy's new release id, when C(release) proposes the id
        of an existing release built from the same artifact (so that all hosts run
        one id per artifact). A host that has C(release) with this artifact and
        config switches to it; a host without it builds it under that id; a host
        whose C(release) has other config builds C(new_release).
    type: str
  artifact:
    description: For C(build) - the artifact tar on the host (removed once unpacked).
    type: path
  artifact_hash:
    description: For C(build) - the artifact's content hash.
    type: str
  config_files:
    description: For C(build) - files whose content is part of the release (env file, unit); a change forces a new release.
    type: list
    elements: path
    default: []
  installer:
    description: For C(build) - what builds the venv.
    type: str
    default: uv
    choices: [uv, pip]
  python:
    description: For C(build) - the interpreter of the venv.
    type: path
    default: /usr/bin/python3
  uv_dir:
    description: For C(build) - where uv binaries unpacked from the wheelhouse live (C(<uv_dir>/<version>/uv)).
    type: path
    default: /opt/pyfleet/uv
  cache_dir:
    description: For C(build) - uv's cache on the host (makes a code-only release fast).
    type: path
    default: /var/cache/pyfleet/uv
  compile_bytecode:
    description: For C(build) - compile .pyc files (the sandbox makes the release read-only, so Python cannot write them later).
    type: bool
    default: false
  group:
    description: The app's group; release directories are C(root:<group>) mode 0750 (and the group the import gate runs as).
    type: str
  revision:
    description: For C(build) - what goes into the REVISION file (deployer, source, version...).
    type: dict
    default: {}
  force:
    description: For C(build) - build a new release even when nothing changed.
    type: bool
    default: false
  unit:
    description: For C(activate) - the template unit's base name (C(pyfleet-<app>)); instances are C(<unit>@<release>.service).
    type: str
  socket_dir:
    description: For C(activate) - the app's socket directory; a release listens on C(<socket_dir>/<release>/app.sock).
    type: path
  health_path:
    description: For C(activate) - the URL path that must answer 2xx/3xx.
    type: str
    default: /healthz
  health_host:
    description: For C(activate) - the Host header of health checks (the app's first domain).
    type: str
    default: localhost
  health_timeout:
    description: For C(activate) - seconds the new instance has to answer its health path (with C(celery_app) - to import it).
    type: int
    default: 30
  upstream_file:
    description: For C(activate) - the nginx upstream include this app's server block uses; empty skips nginx.
    type: path
  celery_app:
    description:
      - For C(activate) on a host that runs only the app's Celery workers - the
        Celery app (C(module:attribute)) the release's venv must import before
        C(current) moves. Needs C(user) and C(group); excludes C(unit).
    type: str
  user:
    description: With C(celery_app) - the app's user the import runs as.
    type: str
  env_file:
    description: With C(celery_app) - the environment file the import reads (the Celery settings), if present.
    type: path
  nginx_port:
    description: For C(activate) - the port the host's nginx serves the app on.
    type: int
    default: 80
  drain_wait:
    description: For C(activate) - seconds to wait for old nginx workers to finish before the old instance stops.
    type: int
    default: 30
  stop_wait:
    description: For C(activate) - seconds to wait for the old instance's main process to finish its requests and exit.
    type: int
    default: 60
  keep_releases:
    description: How many releases to keep (the current one always stays).
    type: int
    default: 5
  remove_on_failure:
    description: For C(activate) - remove the release when its activation fails (false for rollbacks).
    type: bool
    default: true
  host:
    description: The inventory host name, for messages.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Switch a web host to the new release, health-gated
  pyfleet_release:
    action: activate
    app: hello
    base_dir: /srv/hello
    release: 20261124T051900Z
    unit: pyfleet-hello
    socket_dir: /run/hello
    health_path: /healthz
    health_host: hello.lab.test
    upstream_file: /etc/nginx/pyfleet/hello.upstream.conf
    host: "{{ inventory_hostname }}"

- name: Roll a worker host back to the release before, gated on importing the Celery app
  pyfleet_release:
    action: activate
    app: hello
    base_dir: /srv/hello
    release: previous
    celery_app: sampleapp.tasks:app
    user: app_hello
    group: app_hello
    env_file: /etc/pyfleet/celery/hello.env
    remove_on_failure: false
    host: "{{ inventory_hostname }}"
"""

RETURN = r"""
release:
  description: The release that is (or would be) current.
  type: str
  returned: build, activate
previous:
  description: The release that was current before.
  type: str
  returned: build, activate
new:
  description: For build - whether the release differs from the current one (a switch follows; false - up to date).
  type: bool
  returned: build
built:
  description: For build - whether the release was built now (false - an existing release is reused).
  type: bool
  returned: build
pruned:
  description: Releases removed to keep keep_releases.
  type: list
  returned: activate
seconds:
  description: Time per step.
  type: dict
  returned: build, activate
"""

RELEASE_RE = re.compile(r"\d{8}T\d{6}Z")
META = ".pyfleet-release.json"
SOCKET = "app.sock"
# Where ``systemctl enable`` links the units (their [Install] WantedBy=multi-user.target).
SYSTEMD_DIR = "/etc/systemd/system"


class Failed(Exception):
    """A step failed; the message is the reason, one line."""


# --- small helpers ------------------------------------------------------------------


def run(args, env=None, timeout=600, stdin=None):
    """Run a command; return (rc, combined output)."""
    proc = subprocess.run(
        [str(a) for a in args], env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout


def last_line(text, prefer=r"Error|error|Exception|denied|failed|not found"):
    """The most telling line of a tool's output: the last error-like one, else the last one."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return "no output"
    for line in reversed(lines):
        if re.search(prefer, line):
            return line[:300]
    return lines[-1][:300]


def must(args, what, env=None, timeout=600):
    """Run a command or raise Failed("<what>: <its telling line>")."""
    rc, out = run(args, env=env, timeout=timeout)
    if rc != 0:
        raise Failed(f"{what}: {last_line(out)}")
    return out


def current_release(base_dir):
    """The release id ``current`` points at, or None."""
    try:
        target = os.readlink(os.path.join(base_dir, "current"))
    except OSError:
        return None
    name = os.path.basename(target.rstrip("/"))
    return name if RELEASE_RE.fullmatch(name) else None


def releases(base_dir):
    """Complete releases (with their metadata file), oldest first."""
    path = os.path.join(base_dir, "releases")
    try:
        names = os.listdir(path)
    except OSError:
        return []
    return sorted(n for n in names if RELEASE_RE.fullmatch(n) and os.path.isfile(os.path.join(path, n, META)))


def read_meta(base_dir, release):
    """A release's metadata dict, or {}."""
    try:
        with open(os.path.join(base_dir, "releases", release, META), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def sha256_files(paths):
    """One hash over the contents of files (a missing file counts as absent)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode() + b"\0")
        try:
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
        except OSError:
            digest.update(b"absent")
    return "sha256:" + digest.hexdigest()


def hash_dir_name(artifact_hash):
    """The wheelhouse directory name of an artifact hash (its first 16 hex digits)."""
    return artifact_hash.split(":")[-1][:16]


def chown_group(path, group):
    """root:<group>, mode 0750: the app may read its release, others not at all."""
    gid = int(must(["getent", "group", group], f"group {group} does not exist").split(":")[2]) if group else 0
    os.chown(path, 0, gid)
    os.chmod(path, 0o750)


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)


# --- info ----------------------------------------------------------------------------


def action_info(params):
    """The host's Python/platform and each app's release state."""
    apps = {}
    for name, base_dir in (params["apps"] or {}).items():
        wheelhouse = os.path.join(base_dir, "wheelhouse")
        try:
            houses = sorted(
                n for n in os.listdir(wheelhouse) if os.path.isfile(os.path.join(wheelhouse, n, "MANIFEST.json"))
            )
        except OSError:
            houses = []
        current = current_release(base_dir)
        config_files = (params.get("config_files_of") or {}).get(name)
        built_with = read_meta(base_dir, current).get("config_hash") if current else None
        apps[name] = {
            "current": current,
            "releases": releases(base_dir),
            "wheelhouses": houses,
            "artifact_hash": read_meta(base_dir, current).get("artifact_hash") if current else None,
            # Which artifact each release was built from (the controller reuses an id per artifact).
            "release_hashes": {r: read_meta(base_dir, r).get("artifact_hash") for r in releases(base_dir)},
            # The current release has the config the host holds now (None: not asked).
            "config_current": bool(built_with) and built_with == sha256_files(config_files) if config_files else None,
        }
    glibc = (os.confstr("CS_GNU_LIBC_VERSION") or "glibc 0.0").split()[-1]
    return {
        "changed": False,
        "python": platform.python_version(),
        "arch": platform.machine(),
        "glibc": glibc,
        "cpus": os.cpu_count() or 1,
        "apps": apps,
    }


# --- build ----------------------------------------------------------------------------


def unpack(artifact, wheelhouse_dir):
    """Unpack the artifact tar into wheelhouse_dir (atomically), then remove the tar."""
    if os.path.isfile(os.path.join(wheelhouse_dir, "MANIFEST.json")):
        if artifact and os.path.exists(artifact):
            os.unlink(artifact)
        return False
    if not artifact or not os.path.isfile(artifact):
        raise Failed(f"artifact {artifact} is not on the host and {wheelhouse_dir} is not unpacked; ship it first")
    tmp = wheelhouse_dir + ".tmp"
    rmtree(tmp)
    os.makedirs(tmp)
    with tarfile.open(artifact) as tar:
        for member in tar.getmembers():
            if member.name.startswith(("/", "..")) or "/../" in member.name or not (member.isfile() or member.isdir()):
                raise Failed(f"artifact {artifact} holds an unsafe member {member.name!r}; rebuild it")
        tar.extractall(tmp)
    os.replace(tmp, wheelhouse_dir)
    os.unlink(artifact)
    return True


def ensure_uv(wheelhouse_dir, uv_dir):
    """The uv binary of the wheelhouse's uv wheel, unpacked once per version."""
    wheels = (
        sorted(f for f in os.listdir(os.path.join(wheelhouse_dir, "uv")) if f.endswith(".whl"))
        if os.path.isdir(os.path.join(wheelhouse_dir, "uv"))
        else []
    )
    if not wheels:
        raise Failed(f"{wheelhouse_dir} has no uv wheel; use installer pip or rebuild the wheelhouse")
    version = wheels[0].split("-")[1]
    binary = os.path.join(uv_dir, version, "uv")
    if os.access(binary, os.X_OK):
        return binary
    os.makedirs(os.path.dirname(binary), exist_ok=True)
    with zipfile.ZipFile(os.path.join(wheelhouse_dir, "uv", wheels[0])) as wheel:
        member = next((n for n in wheel.namelist() if re.fullmatch(r"uv-[^/]+\.data/scripts/uv", n)), None)
        if member is None:
            raise Failed(f"{wheels[0]} holds no uv binary; rebuild the wheelhouse")
        tmp = binary + ".tmp"
        with wheel.open(member) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
    os.chmod(tmp, 0o755)
    os.replace(tmp, binary)
    return binary


def build_venv(params, wheelhouse_dir, venv, project=None):
    """Create the release venv from the wheelhouse alone (``project``: the app's own package)."""
    lock = os.path.join(wheelhouse_dir, "requirements.lock")
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    if params["installer"] == "uv":
        uv = ensure_uv(wheelhouse_dir, params["uv_dir"])
        env.update(UV_CACHE_DIR=params["cache_dir"], UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never")
        must([uv, "venv", "--quiet", "--python", params["python"], venv], "creating the venv with uv", env)
        cmd = [
            uv,
            "pip",
            "install",
            "--quiet",
            "--offline",
            "--no-index",
            "--find-links",
            wheelhouse_dir,
            "--python",
            os.path.join(venv, "bin", "python"),
            "-r",
            lock,
        ]
        # No stale app wheel from uv's cache: the app's wheel keeps its name and
        # version across code changes, but each artifact unpacks to a path of its own.
        if params["compile_bytecode"]:
            cmd.append("--compile-bytecode")
        must(cmd, "installing the wheelhouse with uv", env)
    else:
        must([params["python"], "-m", "venv", venv], "creating the venv with python3 -m venv", env)
        cmd = [
            os.path.join(venv, "bin", "pip"),
            "install",
            "--quiet",
            "--isolated",
            "--no-index",
            "--find-links",
            wheelhouse_dir,
            "-r",
            lock,
        ]
        if not params["compile_bytecode"]:
            cmd.append("--no-compile")
        must(cmd, "installing the wheelhouse with pip", env)


def build_target(params, existing, current, matches):
    """Which release a build goes to: ``(release, build)``.

    ``release`` is the id the deploy proposes: a new id, or (one artifact, one
    release id) the id of a release built from the same artifact that some host
    of the app already has, chosen on the controller so that every host agrees.
    ``new_release`` is the deploy's new id, used when the proposed one exists
    here with other config. ``matches(id)``: that release here has this
    artifact and config. ``build`` False: switch to (or stay on) an existing release.
    """
    wanted = params["release"]
    fresh = params.get("new_release") or wanted
    if params["force"]:
        return fresh, not matches(fresh)
    if wanted in existing and matches(wanted):
        return wanted, False
    if wanted == fresh and current and matches(current):
        return current, False  # no shared id proposed: the current release is up to date
    if wanted != fresh and wanted not in existing:
        return wanted, True  # build the id the other hosts run
    return fresh, not (fresh in existing and matches(fresh))


def action_build(params):
    """Build releases/<release> from the artifact unless this host already has a release of it.

    Returns ``release`` (the release to switch to), ``new`` (it is not the
    current one: switch) and ``built`` (built now, not an existing release).
    """
    base, group = params["base_dir"], params["group"]
    for rid in (params["release"], params.get("new_release") or params["release"]):
        if not RELEASE_RE.fullmatch(rid or ""):
            raise Failed(f"release id {rid!r} is not a UTC stamp like 20261124T051900Z")
    artifact_hash = params["artifact_hash"]
    config_hash = sha256_files(params["config_files"])
    current = current_release(base)
    existing = releases(base)

    def matches(rid):
        meta = read_meta(base, rid) if rid in existing else {}
        return meta.get("artifact_hash") == artifact_hash and meta.get("config_hash") == config_hash

    release, build = build_target(params, existing, current, matches)
    result = {
        "changed": False,
        "release": release,
        "previous": current,
        "new": release != current,
        "built": False,
        "seconds": {},
    }
    if not build:
        return result  # already here (or built by an earlier run that stopped before the switch)
    if release == current:
        raise Failed(f"release {release} is current; choose a new release id")
    rel_dir = os.path.join(base, "releases", release)
    result["built"] = True
    if params.get("_check_mode"):
        return dict(result, changed=True)
    os.umask(0o022)
    wheelhouse_dir = os.path.join(base, "wheelhouse", hash_dir_name(artifact_hash))
    started = time.monotonic()
    try:
        unpack(params["artifact"], wheelhouse_dir)
        result["seconds"]["unpack"] = round(time.monotonic() - started, 2)
        rmtree(rel_dir)
        os.makedirs(rel_dir)
        chown_group(rel_dir, group)
        step = time.monotonic()
        with open(os.path.join(wheelhouse_dir, "MANIFEST.json"), encoding="utf-8") as handle:
            manifest = json.load(handle)
        build_venv(params, wheelhouse_dir, os.path.join(rel_dir, "venv"), manifest.get("project"))
        result["seconds"]["venv"] = round(time.monotonic() - step, 2)
        static = os.path.join(wheelhouse_dir, "static")
        if os.path.isdir(static):
            shutil.copytree(static, os.path.join(rel_dir, "static"))
        os.symlink("../../shared", os.path.join(rel_dir, "shared"))
        revision = dict(params["revision"] or {})
        revision.update(
            release=release,
            app=params["app"],
            project=manifest.get("project"),
            version=manifest.get("version"),
            artifact_hash=artifact_hash,
            wheelhouse_hash=manifest.get("content_hash"),
            installer=params["installer"],
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        with open(os.path.join(rel_dir, "REVISION"), "w", encoding="utf-8") as handle:
            handle.writelines(f"{key}={value}\n" for key, value in revision.items())
        meta = dict(revision, config_hash=config_hash, wheelhouse=wheelhouse_dir)
        with open(os.path.join(rel_dir, META), "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=2, sort_keys=True)
    except Exception as exc:  # a half-built release must never stay behind
        rmtree(rel_dir)
        if isinstance(exc, Failed):
            raise Failed(f"building release {release} failed: {exc}") from None
        raise Failed(f"building release {release} failed: {type(exc).__name__}: {exc}") from None
    result["seconds"]["total"] = round(time.monotonic() - started, 2)
    result["changed"] = True
    return result


# --- activate ------------------------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (what nginx talks to the app over)."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def http_status(conn, path, host):
    """GET path with Host header; the status code, or raise OSError/HTTPException."""
    try:
        conn.request("GET", path, headers={"Host": host, "User-Agent": "pyfleet-health", "Connection": "close"})
        return conn.getresponse().status
    finally:
        conn.close()


def unit_state(unit):
    """{ActiveState, SubState, NRestarts, Result} of a unit."""
    _, out = run(["systemctl", "show", "-p", "ActiveState,SubState,NRestarts,Result", unit])
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


EXCEPTION_RE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit)|SyntaxError)\b.*")


def journal_reason(unit):
    """The telling line of the unit's own output: the app's exception, else an error line.

    gunicorn ends a failed boot with its own HaltServer; the app's exception
    (from the worker's traceback) comes before it and says more.
    """
    _, out = run(["journalctl", "--no-pager", "-o", "cat", "-n", "80", f"_SYSTEMD_UNIT={unit}"])
    exceptions = [
        line.strip()
        for line in out.splitlines()
        if EXCEPTION_RE.match(line.strip()) and not line.strip().startswith("gunicorn.errors.")
    ]
    if exceptions:
        return exceptions[-1][:300]
    line = last_line(out)
    if line == "no output":
        _, out = run(["journalctl", "--no-pager", "-o", "cat", "-n", "10", "-u", unit])
        line = last_line(out)
    return line


def wait_healthy(unit, sock, path, host, timeout):
    """Poll the health path over the unix socket until 2xx/3xx; raise Failed with the reason."""
    deadline = time.monotonic() + timeout
    last = "no socket yet"
    while time.monotonic() < deadline:
        state = unit_state(unit)
        if state.get("ActiveState") in ("failed", "inactive") or int(state.get("NRestarts") or 0) > 0:
            raise Failed(f"{unit} stopped: {journal_reason(unit)}")
        if os.path.exists(sock):
            try:
                status = http_status(UnixHTTPConnection(sock, 5), path, host)
            except (OSError, http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 400:
                    return
                raise Failed(f"health check {path} over {sock} answered HTTP {status}")
        time.sleep(0.2)
    raise Failed(
        f"health check {path} over {sock} got no answer within {timeout} s ({last}); journal: {journal_reason(unit)}"
    )


def nginx_workers():
    """{pid: title} of nginx worker processes."""
    workers = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                title = handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if title.startswith("nginx: worker process"):
            workers[int(pid)] = title
    return workers


def reload_nginx(upstream_file, text):
    """Write the upstream include, validate, reload; return the old workers' pids.

    Returns once the new workers run and the old ones stopped accepting, so a
    request sent after this goes to the new config.
    """
    tmp = upstream_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    old_text = read_text(upstream_file)
    os.replace(tmp, upstream_file)
    rc, out = run(["nginx", "-t", "-q"])
    if rc != 0:
        write_text(upstream_file, old_text)
        raise Failed(f"nginx -t refused the new upstream: {last_line(out)}")
    before = set(nginx_workers())
    must(["systemctl", "reload", "nginx"], "reloading nginx")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = nginx_workers()
        fresh = [p for p in now if p not in before]
        stale = [p for p, t in now.items() if p in before and "shutting down" not in t]
        if fresh and not stale:
            break
        time.sleep(0.05)
    return before


def wait_gone(pids, timeout):
    """Wait until none of pids runs (old nginx workers finishing their requests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(os.path.exists(f"/proc/{p}") for p in pids):
            return True
        time.sleep(0.1)
    return False


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def write_text(path, text):
    if text is None:
        if os.path.exists(path):
            os.unlink(path)
        return
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def upstream_text(app, socket_dir, release):
    return (
        f"# Written by pyfleet_release: app {app}, release {release}. Do not edit.\n"
        f"server unix:{socket_dir}/{release}/{SOCKET} max_fails=0;\n"
    )


def switch_current(base_dir, release):
    """Point ``current`` at releases/<release> atomically (symlink + rename)."""
    tmp = os.path.join(base_dir, f".current.{os.getpid()}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(f"releases/{release}", tmp)
    os.replace(tmp, os.path.join(base_dir, "current"))


def instances(unit):
    """{instance unit name: ActiveState} of the template unit's loaded instances."""
    _, out = run(["systemctl", "list-units", "--all", "--plain", "--no-legend", "--full", f"{unit}@*.service"])
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith(f"{unit}@"):
            found[parts[0]] = parts[2]
    return found


def stop_units(units, timeout):
    """Stop units warmly and wait until their main processes are gone (at most ``timeout`` s).

    Waiting for the main process rather than for the whole stop job: inside
    containers on cgroup v1 systemd may wait out TimeoutStopSec for leftover
    processes it cannot see go (uvicorn's multiprocessing resource tracker),
    although the server finished its requests and exited long before.
    """
    if not units:
        return
    run(["systemctl", "stop", "--no-block", *units])
    deadline = time.monotonic() + timeout
    pending = list(units)
    while pending and time.monotonic() < deadline:
        still = []
        for name in pending:
            _, out = run(["systemctl", "show", "-p", "ActiveState,MainPID", name])
            state = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
            if state.get("ActiveState") not in ("inactive", "failed") and state.get("MainPID", "0") != "0":
                still.append(name)
        pending = still
        if pending:
            time.sleep(0.2)


def enabled_instances(unit):
    """Instance unit names enabled for boot."""
    wants = os.path.join(SYSTEMD_DIR, "multi-user.target.wants")
    try:
        return sorted(n for n in os.listdir(wants) if n.startswith(f"{unit}@") and n.endswith(".service"))
    except OSError:
        return []


def prune(base_dir, keep, protect):
    """Remove the oldest releases beyond ``keep`` (never those in ``protect``), and unused wheelhouses."""
    all_releases = releases(base_dir)
    kept = set(all_releases[-keep:]) | {p for p in protect if p}
    removed = [r for r in all_releases if r not in kept]
    for name in removed:
        rmtree(os.path.join(base_dir, "releases", name))
    # Half-built leftovers (no metadata) of interrupted builds.
    rel_root = os.path.join(base_dir, "releases")
    for name in os.listdir(rel_root) if os.path.isdir(rel_root) else []:
        path = os.path.join(rel_root, name)
        if RELEASE_RE.fullmatch(name) and not os.path.isfile(os.path.join(path, META)) and name not in kept:
            rmtree(path)
    used = {os.path.basename(read_meta(base_dir, r).get("wheelhouse", "")) for r in releases(base_dir)}
    house_root = os.path.join(base_dir, "wheelhouse")
    for name in os.listdir(house_root) if os.path.isdir(house_root) else []:
        if name not in used and not name.endswith(".tar"):
            rmtree(os.path.join(house_root, name))
    return removed


def target_release(base, wanted, current):
    """The release id ``wanted`` names: itself, or for ``previous`` the newest release older than ``current``."""
    if wanted == "previous":
        older = [r for r in releases(base) if current is None or r < current]
        if not older:
            raise Failed(
                f"no release older than {current} to roll back to; releases: {', '.join(releases(base)) or 'none'}"
            )
        return older[-1]
    if not RELEASE_RE.fullmatch(wanted or ""):
        raise Failed(f"release id {wanted!r} is not a UTC stamp like 20261124T051900Z")
    return wanted


def refused(params, release, current, reason):
    """The one-line refusal of ``release``, which is removed first unless kept (rollbacks) or current."""
    removed = ""
    if params["remove_on_failure"] and release != current:
        rmtree(os.path.join(params["base_dir"], "releases", release))
        removed = ", release removed"
    serving = f"still serving {current}" if current else "nothing was serving before"
    return Failed(f"release {release} refused: {reason} ({serving}{removed})")


def action_activate(params):
    """Switch to ``release``: a web host's health-gated instance switch, or a worker host's gated ``current``."""
    base = params["base_dir"]
    current = current_release(base)
    release = target_release(base, params["release"], current)
    if release not in releases(base):
        if params.get("_check_mode"):
            return {"changed": True, "release": release, "previous": current, "pruned": [], "seconds": {}}
        raise Failed(f"release {release} does not exist; releases: {', '.join(releases(base)) or 'none'}")
    if params["celery_app"]:
        return activate_workers(params, release, current)
    return activate_web(params, release, current)


def activate_workers(params, release, current):
    """A host that runs only Celery workers: the release imports the Celery app, then ``current`` moves."""
    base = params["base_dir"]
    result = {"changed": release != current, "release": release, "previous": current, "pruned": [], "seconds": {}}
    if params.get("_check_mode"):
        return result
    if release != current:
        started = time.monotonic()
        try:
            import_gate(params, release)
        except Failed as exc:
            raise refused(params, release, current, exc) from None
        result["seconds"]["gate"] = round(time.monotonic() - started, 2)
        switch_current(base, release)
    # The release that served until now stays too (what a rollback goes back to), even when older than the rest.
    result["pruned"] = prune(base, params["keep_releases"], {release, current})
    result["changed"] = result["changed"] or bool(result["pruned"])
    return result


def import_gate(params, release):
    """Import the Celery app with the release's venv, as the app's user and with its environment."""
    rel_dir = os.path.join(params["base_dir"], "releases", release)
    module, _, attr = params["celery_app"].partition(":")
    unit = f"pyfleet-gate-{params['app']}-{release.lower()}.service"
    args = [
        "systemd-run",
        "--quiet",
        "--wait",
        "--pipe",
        "--collect",
        "--service-type=exec",
        f"--unit={unit}",
        f"--property=User={params['user']}",
        f"--property=Group={params['group']}",
        f"--property=WorkingDirectory={rel_dir}",
    ]
    if params["env_file"]:
        args.append(f"--property=EnvironmentFile=-{params['env_file']}")
    # Not "from m import a": the attribute may be dotted (module:obj.app).
    args += [os.path.join(rel_dir, "venv", "bin", "python"), "-c", f"import {module}; {module}.{attr}"]
    try:
        rc, out = run(args, timeout=params["health_timeout"], stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        run(["systemctl", "stop", unit])
        raise Failed(f"importing {params['celery_app']} took longer than {params['health_timeout']} s") from None
    if rc != 0:
        raise Failed(f"its venv does not import {params['celery_app']}: {last_line(out)}")


def activate_web(params, release, current):
    """Health-gated switch of the app's instance and nginx upstream to ``release``; undone as a whole on failure."""
    base, app, unit = params["base_dir"], params["app"], params["unit"]
    new_unit = f"{unit}@{release}.service"
    sock = os.path.join(params["socket_dir"], release, SOCKET)
    upstream_file = params["upstream_file"]
    wanted_upstream = upstream_text(app, params["socket_dir"], release)
    result = {"changed": False, "release": release, "previous": current, "pruned": [], "seconds": {}}
    running = instances(unit)
    in_place = (
        current == release
        and running.get(new_unit) == "active"
        and (not upstream_file or read_text(upstream_file) == wanted_upstream)
        and [n for n, s in running.items() if s == "active"] == [new_unit]
        and enabled_instances(unit) == [new_unit]
    )
    if params.get("_check_mode"):
        return dict(result, changed=not in_place)
    if in_place:
        result["pruned"] = prune(base, params["keep_releases"], {current})
        result["changed"] = bool(result["pruned"])
        return result

    started = time.monotonic()
    old_upstream = read_text(upstream_file) if upstream_file else None
    upstream_changed = False
    was_active = running.get(new_unit) == "active"
    try:
        if not was_active:
            run(["systemctl", "reset-failed", new_unit])
            rc, _out = run(["systemctl", "start", new_unit], timeout=params["health_timeout"] + 120)
            if rc != 0:
                raise Failed(f"{new_unit} did not start: {journal_reason(new_unit)}")
        wait_healthy(new_unit, sock, params["health_path"], params["health_host"], params["health_timeout"])
        result["seconds"]["start"] = round(time.monotonic() - started, 2)
        old_workers = set()
        if upstream_file:
            if old_upstream != wanted_upstream:
                upstream_changed = True
                old_workers = reload_nginx(upstream_file, wanted_upstream)
            check_through_nginx(params)
        result["seconds"]["nginx"] = round(time.monotonic() - started, 2)
    except Failed as exc:
        if upstream_changed:
            write_text(upstream_file, old_upstream)
            run(["systemctl", "reload", "nginx"])
        if not was_active:
            stop_units([new_unit], 30)
        raise refused(params, release, current, exc) from None

    # Past the gate: from here on the new release takes the traffic.
    switch_current(base, release)
    stale_enabled = [n for n in enabled_instances(unit) if n != new_unit]
    must(["systemctl", "enable", "--quiet", new_unit], f"enabling {new_unit}")
    if stale_enabled:
        run(["systemctl", "disable", "--quiet", *stale_enabled])
    wait_gone(old_workers, params["drain_wait"])
    listed = instances(unit)
    old_running = [n for n, s in listed.items() if n != new_unit and s in ("active", "activating", "reloading")]
    # SIGTERM: a warm stop; TimeoutStopSec in the unit is longer than the graceful timeout.
    stop_units(old_running, params["stop_wait"])
    stale = [n for n, s in listed.items() if n != new_unit and s == "failed"]
    if stale:
        run(["systemctl", "reset-failed", *stale])
    result["stopped"] = old_running
    # The release that served until now stays too (what a rollback goes back to), even when older than the rest.
    result["pruned"] = prune(base, params["keep_releases"], {release, current})
    result["seconds"]["total"] = round(time.monotonic() - started, 2)
    result["changed"] = True
    return result


def check_through_nginx(params):
    """The health path through the host's nginx, with the app's Host header."""
    deadline = time.monotonic() + 10
    last = None
    while time.monotonic() < deadline:
        try:
            status = http_status(
                http.client.HTTPConnection("127.0.0.1", params["nginx_port"], timeout=5),
                params["health_path"],
                params["health_host"],
            )
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if 200 <= status < 400:
                return
            last = f"HTTP {status}"
        time.sleep(0.2)
    raise Failed(f"health check {params['health_path']} through nginx (Host {params['health_host']}) failed: {last}")


def action_absent(params):
    """Remove one release (never the current one)."""
    base, release = params["base_dir"], params["release"]
    if not RELEASE_RE.fullmatch(release or ""):
        raise Failed(f"release id {release!r} is not a UTC stamp like 20261124T051900Z")
    if release == current_release(base):
        raise Failed(f"release {release} is current; activate another release first")
    path = os.path.join(base, "releases", release)
    if not os.path.exists(path):
        return {"changed": False, "release": release}
    if params.get("_check_mode"):
        return {"changed": True, "release": release}
    if params["unit"]:
        stop_units([f"{params['unit']}@{release}.service"], 30)
        run(["systemctl", "disable", "--quiet", f"{params['unit']}@{release}.service"])
    rmtree(path)
    return {"changed": True, "release": release}


ACTIONS = {"info": action_info, "build": action_build, "activate": action_activate, "absent": action_absent}

ARGUMENT_SPEC = {
    "action": {"type": "str", "required": True, "choices": list(ACTIONS)},
    "app": {"type": "str"},
    "apps": {"type": "dict", "default": {}},
    "config_files_of": {"type": "dict", "default": {}},
    "base_dir": {"type": "path"},
    "release": {"type": "str"},
    "new_release": {"type": "str"},
    "artifact": {"type": "path"},
    "artifact_hash": {"type": "str"},
    "config_files": {"type": "list", "elements": "path", "default": []},
    "installer": {"type": "str", "default": "uv", "choices": ["uv", "pip"]},
    "python": {"type": "path", "default": "/usr/bin/python3"},
    "uv_dir": {"type": "path", "default": "/opt/pyfleet/uv"},
    "cache_dir": {"type": "path", "default": "/var/cache/pyfleet/uv"},
    "compile_bytecode": {"type": "bool", "default": False},
    "group": {"type": "str"},
    "revision": {"type": "dict", "default": {}},
    "force": {"type": "bool", "default": False},
    "unit": {"type": "str"},
    "socket_dir": {"type": "path"},
    "health_path": {"type": "str", "default": "/healthz"},
    "health_host": {"type": "str", "default": "localhost"},
    "health_timeout": {"type": "int", "default": 30},
    "upstream_file": {"type": "path"},
    "nginx_port": {"type": "int", "default": 80},
    "drain_wait": {"type": "int", "default": 30},
    "stop_wait": {"type": "int", "default": 60},
    "celery_app": {"type": "str"},
    "user": {"type": "str"},
    "env_file": {"type": "path"},
    "keep_releases": {"type": "int", "default": 5},
    "remove_on_failure": {"type": "bool", "default": True},
    "host": {"type": "str", "default": ""},
}

# Which arguments each action needs, checked by Ansible before the module runs.
# An activate switches a web host (unit and socket_dir) or a Celery-only host
# (celery_app); absent takes unit alone (the instance to stop).
ARGUMENT_RULES = {
    "required_if": [
        ("action", "build", ("app", "base_dir", "release", "artifact_hash", "group")),
        ("action", "activate", ("app", "base_dir", "release")),
        ("action", "activate", ("unit", "celery_app"), True),
        ("action", "activate", ("socket_dir", "celery_app"), True),
        ("action", "absent", ("app", "base_dir", "release")),
    ],
    "mutually_exclusive": [("unit", "celery_app"), ("socket_dir", "celery_app"), ("upstream_file", "celery_app")],
    "required_by": {"celery_app": ("user", "group")},
}


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        **ARGUMENT_RULES,
        # Check mode reports what would change and changes nothing.
        supports_check_mode=True,
    )
    params = dict(module.params, _check_mode=module.check_mode)
    who = f"{params['host'] or socket.gethostname()}: app {params['app'] or '?'}: "
    try:
        module.exit_json(**ACTIONS[params["action"]](params))
    except Failed as exc:
        module.fail_json(msg=who + str(exc))


if __name__ == "__main__":
    main()
