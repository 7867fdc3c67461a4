"""Controller side of a deploy: one release id, one artifact per app and host platform.

The deploy playbook calls this once per deploy (``python -m pyfleet.deploy
build``) with the normalised apps and the hosts' platforms; it prints one JSON
document. For each app and target it holds the artifact the hosts get: a tar of
the app's wheelhouse (``pyfleet.wheelhouse``: wheels, lock, uv, static files),
and its content hash, which is what a host compares with its current release
to decide that a deploy changes nothing.

Every failure is one line, ``{"error": "..."}``, naming the app and the fix.
"""

import argparse
import getpass
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from pyfleet import rollout, wheelhouse
from pyfleet.errors import PyfleetError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / ".cache" / "deploy"


def release_id(now=None):
    """A release id: the UTC time as 20261124T051900Z."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def source_revision(app):
    """The git commit of a path source (with "+dirty" when it has local changes), or ''."""
    source = app.get("source") or {}
    if source.get("type") != "path":
        return source.get("requirement") or Path(source.get("wheel", "")).name
    path = source["path"]
    try:
        head = subprocess.run(
            ["git", "-C", path, "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(
            ["git", "-C", path, "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _build_key(app, target):
    """What a wheelhouse depends on: apps that share it (one project served twice) build it once."""
    return json.dumps([app.get("source"), app.get("requirements"), app.get("static_dir"), target.key], sort_keys=True)


def build_artifact(app, target, out_dir=DEFAULT_OUT, check_entry=True, built=None):
    """Build the wheelhouse of ``app`` for ``target`` and pack it in one tar.

    ``built``: a dict shared by the calls of one deploy, so that apps with the
    same source, requirements and static files share one wheelhouse build.
    Returns ``{"tar", "hash", "hash_dir", "version", "project", "source_revision",
    "entry_check", "seconds"}``. The tar is reused when one with the same hash exists.
    """
    started = time.monotonic()
    built = {} if built is None else built
    key = _build_key(app, target)
    revision = source_revision(app)
    if key in built:
        house, manifest = built[key]
    else:
        house = Path(out_dir) / "wheelhouses" / app["name"] / target.key
        manifest = wheelhouse.build_or_reuse(app, house, target, revision)
        built[key] = (house, manifest)
    # The wheelhouse holds static/ too, and its content hash covers every file.
    digest = manifest["content_hash"]
    hash_dir = digest.split(":")[1][:16]
    entry = "skipped: turned off"
    if check_entry:
        # Checked once per (wheelhouse, entry): a redeploy of the same code skips the venv build.
        marker = Path(out_dir) / "entry-ok" / f"{app['name']}-{target.key}-{hash_dir}-{app['entry'].replace(':', '.')}"
        if marker.is_file():
            entry = marker.read_text(encoding="utf-8")
        else:
            entry = _check_entry_uncached(house, app)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(entry, encoding="utf-8")
    tar_path = Path(out_dir) / "artifacts" / f"{app['name']}-{target.key}-{hash_dir}.tar"
    if not tar_path.is_file():
        tar_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = tar_path.with_suffix(".tmp")
        with tarfile.open(tmp, "w") as tar:
            for path in sorted(house.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=str(path.relative_to(house)), recursive=False)
        os.replace(tmp, tar_path)
        _prune_artifacts(tar_path.parent, app["name"], keep=10)
    else:
        # Used again: as new as a fresh tar, so that pruning keeps it while this deploy ships it.
        os.utime(tar_path)
    return {
        "tar": str(tar_path),
        "hash": digest,
        "hash_dir": hash_dir,
        "version": manifest.get("version"),
        "project": manifest.get("project"),
        "source_revision": revision,
        "entry_check": entry,
        "seconds": round(time.monotonic() - started, 2),
    }


def _check_entry_uncached(house, app):
    """wheelhouse.check_entry_importable without uv's cache.

    The controller's wheelhouse of an app keeps one path across deploys, and
    uv's cache may then hand out an earlier build of the app's wheel with the
    same name and version (the check passed for code that did not import).
    Without the cache the check installs exactly the wheelhouse's files.
    """
    old = os.environ.get("UV_NO_CACHE")
    os.environ["UV_NO_CACHE"] = "1"
    try:
        return wheelhouse.check_entry_importable(house, app).detail
    finally:
        if old is None:
            os.environ.pop("UV_NO_CACHE", None)
        else:
            os.environ["UV_NO_CACHE"] = old


def _prune_artifacts(directory, name, keep):
    """Keep the newest ``keep`` artifact tars of an app on the controller.

    Only the app's own tars, ``<name>-<target key>-<hash>.tar``: app ``hello`` leaves ``hello-api``'s alone.
    """
    own = re.compile(re.escape(name) + r"-cp\d+-[a-z0-9_]+-glibc[0-9.]+-[0-9a-f]{16}\.tar")
    tars = sorted(
        (p for p in directory.glob(f"{name}-*.tar") if own.fullmatch(p.name)), key=lambda p: p.stat().st_mtime
    )
    for old in tars[:-keep]:
        old.unlink(missing_ok=True)


def build_all(apps, targets, out_dir=DEFAULT_OUT, check_entry=True, only=None):
    """Artifacts for every app (or those named in ``only``) and target: ``{app: {target key: artifact}}``.

    ``targets``: ``{key: Target}``, the distinct platforms of the hosts.
    """
    result, built = {}, {}
    for app in apps:
        if only and app["name"] not in only:
            continue
        result[app["name"]] = {
            key: build_artifact(app, target, out_dir, check_entry, built) for key, target in sorted(targets.items())
        }
    return result


def target_of(python, arch, glibc):
    """The wheelhouse Target of a host from its Python version, architecture and glibc."""
    return wheelhouse.Target.from_facts(python, arch, glibc)


def with_sources(apps, sources, base="."):
    """The apps with the source of some replaced by another project directory.

    ``sources``: ``{app name: path}``; relative paths are taken from ``base``.
    For deploying a branch or a changed copy without editing the inventory.
    """
    names = {app["name"] for app in apps}
    for name, path in (sources or {}).items():
        if name not in names:
            raise PyfleetError(
                f"deploy_sources.{name}: no app {name} in pyfleet_apps; use one of {', '.join(sorted(names))}"
            )
        full = (Path(base) / path).resolve()
        if not (full / "pyproject.toml").is_file():
            raise PyfleetError(
                f"deploy_sources.{name}: {full} has no pyproject.toml; point it at the project directory"
            )
    return [
        dict(app, source={"type": "path", "path": str((Path(base) / sources[app["name"]]).resolve())})
        if app["name"] in (sources or {})
        else app
        for app in apps
    ]


def shared_release(app, artifact_of, infos, fresh):
    """The release id every host of ``app`` runs for this deploy: one artifact, one release id.

    ``artifact_of``: ``{host: artifact hash this deploy gives the host}``;
    ``infos``: ``{host: pyfleet_release info}``. When some host already has a
    release built from the same artifact, its id is reused (hosts that have it
    switch to it, hosts without it build it under that id), so a host that was
    left on another release (a failed rollback, a host that missed a deploy)
    joins the others instead of getting an id of its own. Among several such
    releases: the one current on most hosts, then present on most, then the
    newest. Otherwise ``fresh``, the deploy's new id.
    """
    score = {}
    for host, digest in artifact_of.items():
        state = ((infos.get(host) or {}).get("apps") or {}).get(app) or {}
        for release, built_from in (state.get("release_hashes") or {}).items():
            if built_from and built_from == digest:
                current, present, _ = score.get(release, (0, 0, release))
                score[release] = (current + (state.get("current") == release), present + 1, release)
    return max(score.values())[2] if score else fresh


def settled(artifact, state):
    """The host's current release of an app is this deploy's: same artifact, same id, config as built.

    ``artifact``: what the deploy gives the host (with its shared ``release``);
    ``state``: the app's part of the host's pyfleet_release info. The deploy
    then leaves the app alone on that host: no task runs for it there.
    """
    return (
        state.get("config_current") is True
        and state.get("current") is not None
        and state.get("artifact_hash") == artifact["hash"]
        and state.get("current") == artifact["release"]
    )


def plan(request, out_dir=DEFAULT_OUT):
    """Build what a deploy request asks for; return the answer for the playbook.

    ``request``: ``{"apps": [normalised apps], "hosts": {host: pyfleet_release
    info}, "placement": the fleet plan's {app: {web: [hosts], workers: [hosts]}}, "only": [names] or None,
    "sources": {name: path}, "release": id or "", "check_entry": bool, "force": bool,
    "celery_hosts": the Celery plan's {host: [worker units]}}``.
    Returns ``{"release", "hosts": {host: {app: artifact}}, "summary": {app: ...},
    "unchanged": [app], "rollout": pyfleet.rollout.plan_rollout of the hosts with a change}``; each host's artifact names the ``release`` id of its app
    (``shared_release``). A host's app that is ``settled`` there is left out of
    its ``hosts`` entry (unless ``force``); ``unchanged`` names the apps left out everywhere.
    """
    apps = with_sources(request.get("apps") or [], request.get("sources"))
    only = request.get("only")
    if only:
        unknown = sorted(set(only) - {app["name"] for app in apps})
        if unknown:
            raise PyfleetError(
                f"deploy_apps: no app {unknown[0]} in pyfleet_apps; use one of {', '.join(app['name'] for app in apps)}"
            )
    # What the deploy puts on each of its hosts: the apps it serves and those whose Celery units run there.
    placement = request.get("placement") or {}
    host_apps = {
        host: [name for name, where in placement.items() if host in where["web"] or host in where["workers"]]
        for host in request.get("hosts") or {}
    }
    wanted = {name for names in host_apps.values() for name in names if not only or name in only}
    targets, host_keys = {}, {}
    for host, info in sorted((request.get("hosts") or {}).items()):
        if not host_apps.get(host):
            continue
        target = target_of(info["python"], info["arch"], info["glibc"])
        targets[target.key] = target
        host_keys[host] = target.key
    if not wanted:
        raise PyfleetError("no app runs on the hosts of this deploy; check pyfleet_apps hosts, deploy_apps and --limit")
    artifacts = build_all(apps, targets, out_dir, check_entry=request.get("check_entry", True), only=wanted)
    fresh = request.get("release") or release_id()
    infos = request.get("hosts") or {}
    hosts = {
        host: {name: artifacts[name][key] for name in host_apps.get(host, []) if name in artifacts}
        for host, key in host_keys.items()
    }
    for name in artifacts:
        artifact_of = {host: apps_[name]["hash"] for host, apps_ in hosts.items() if name in apps_}
        release = shared_release(name, artifact_of, infos, fresh)
        for apps_ in hosts.values():
            if name in apps_:
                apps_[name] = dict(apps_[name], release=release)
    changed = set()
    for host, apps_ in hosts.items():
        state = (infos.get(host) or {}).get("apps") or {}
        for name in list(apps_):
            if request.get("force") or not settled(apps_[name], state.get(name) or {}):
                changed.add(name)
            else:
                del apps_[name]
    summary = {name: next(iter(by_target.values())) for name, by_target in artifacts.items()}
    # The hosts with something to ship, build or switch, in the play's order; the others get no task.
    switching = [host for host in request.get("hosts") or {} if hosts.get(host)]
    answer = {
        "release": fresh,
        "deployer": f"{getpass.getuser()}@{socket.gethostname()}",
        # Each host's apps to ship, build or switch; an app every host already runs is in none.
        "hosts": hosts,
        "summary": summary,
        "unchanged": sorted(set(artifacts) - changed),
        "rollout": rollout.plan_rollout(switching, placement, request.get("celery_hosts")),
    }
    return dict(answer, headline=headline(answer))


def headline(answer):
    """The line the deploy starts with: what it ships (app and version), then what it leaves alone."""
    shipped = [
        f"{name} {answer['summary'][name].get('version', '')}".strip()
        for name in answer["summary"]
        if name not in answer["unchanged"]
    ]
    line = (
        f"release {answer['release']} by {answer['deployer']}: {', '.join(shipped)}" if shipped else "nothing to deploy"
    )
    if answer["unchanged"]:
        line += f"; unchanged, no task on any host: {', '.join(answer['unchanged'])}"
    return line


def main(argv=None):
    """``python -m pyfleet.deploy build``: a JSON request on stdin, a JSON answer on stdout."""
    parser = argparse.ArgumentParser(prog="python -m pyfleet.deploy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the artifacts of a deploy (request on stdin, see plan())")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    try:
        answer = plan(json.load(sys.stdin), out_dir=Path(args.out))
    except PyfleetError as exc:
        answer = {"error": str(exc)}
    except Exception as exc:  # one line for Ansible, never a traceback in the play output
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(answer, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
