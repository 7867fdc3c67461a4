"""Controller side of a deploy: one release id, one artifact per app and host platform.

The deploy playbook calls this once per deploy (``python -m pyfleet.deploy
build``) with the normalised apps and the hosts' platforms; it prints one JSON
document. For each app and target it holds the artifact the hosts get: a tar of
the app's wheelhouse (``pyfleet.wheelhouse``) plus its static files, and the
artifact's content hash, which is what a host compares with its current release
to decide that a deploy changes nothing.

Every failure is one line, ``{"error": "..."}``, naming the app and the fix.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from pyfleet import wheelhouse
from pyfleet.errors import PyfleetError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / ".cache" / "deploy"


def release_id(now=None):
    """A release id: the UTC time as 20261124T051900Z."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def static_files(app):
    """(relative path, absolute path) of the app's static files, sorted; [] without any."""
    source = app.get("source") or {}
    if not app.get("static_dir") or source.get("type") != "path":
        return []
    root = Path(source["path"]) / app["static_dir"]
    if not root.is_dir():
        raise PyfleetError(f"app {app['name']}: static_dir {root} is not a directory; fix static_dir or set it to null")
    return sorted((str(p.relative_to(root)), p) for p in root.rglob("*") if p.is_file())


def artifact_hash(manifest, statics):
    """sha256 over the wheelhouse's content hash and every static file."""
    digest = hashlib.sha256(f"pyfleet-artifact 1 {manifest['content_hash']}\n".encode())
    for rel, path in statics:
        digest.update(f"static/{rel} {hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return "sha256:" + digest.hexdigest()


def source_revision(app):
    """The git commit of a path source (with "+dirty" when it has local changes), or ''."""
    source = app.get("source") or {}
    if source.get("type") != "path":
        return source.get("requirement") or Path(source.get("wheel", "")).name
    path = source["path"]
    try:
        head = subprocess.run(["git", "-C", path, "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, check=False, timeout=10)
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "-C", path, "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, check=False, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return ""


def build_artifact(app, target, out_dir=DEFAULT_OUT, check_entry=True):
    """Build the wheelhouse of ``app`` for ``target`` and pack it with the static files.

    Returns ``{"tar", "hash", "hash_dir", "version", "project", "source_revision",
    "entry_check", "seconds"}``. The tar is reused when one with the same hash exists.
    """
    started = time.monotonic()
    house = Path(out_dir) / "wheelhouses" / app["name"] / target.key
    manifest = wheelhouse.build_wheelhouse(app, house, target=target)
    entry = "skipped: turned off"
    if check_entry:
        entry = wheelhouse.check_entry_importable(house, app).detail
    statics = static_files(app)
    digest = artifact_hash(manifest, statics)
    hash_dir = digest.split(":")[1][:16]
    tar_path = Path(out_dir) / "artifacts" / f"{app['name']}-{target.key}-{hash_dir}.tar"
    if not tar_path.is_file():
        tar_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = tar_path.with_suffix(".tmp")
        with tarfile.open(tmp, "w") as tar:
            for path in sorted(house.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=str(path.relative_to(house)), recursive=False)
            for rel, path in statics:
                tar.add(path, arcname=f"static/{rel}", recursive=False)
        os.replace(tmp, tar_path)
        _prune_artifacts(tar_path.parent, app["name"], keep=10)
    return {
        "tar": str(tar_path),
        "hash": digest,
        "hash_dir": hash_dir,
        "version": manifest.get("version"),
        "project": manifest.get("project"),
        "source_revision": source_revision(app),
        "entry_check": entry,
        "seconds": round(time.monotonic() - started, 2),
    }


def _prune_artifacts(directory, name, keep):
    """Keep the newest ``keep`` artifact tars of an app on the controller."""
    tars = sorted(directory.glob(f"{name}-*.tar"), key=lambda p: p.stat().st_mtime)
    for old in tars[:-keep]:
        old.unlink(missing_ok=True)


def build_all(apps, targets, out_dir=DEFAULT_OUT, check_entry=True, only=None):
    """Artifacts for every app (or those named in ``only``) and target: ``{app: {target key: artifact}}``.

    ``targets``: ``{key: Target}``, the distinct platforms of the hosts.
    """
    result = {}
    for app in apps:
        if only and app["name"] not in only:
            continue
        result[app["name"]] = {
            key: build_artifact(app, target, out_dir, check_entry) for key, target in sorted(targets.items())
        }
    return result


def target_of(python, arch, glibc):
    """The wheelhouse Target of a host from its Python version, architecture and glibc."""
    return wheelhouse.Target.from_facts(python, arch, glibc)


def main(argv=None):
    """``python -m pyfleet.deploy build``: JSON in (stdin), JSON out (stdout)."""
    parser = argparse.ArgumentParser(prog="python -m pyfleet.deploy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the artifacts of a deploy; stdin: {apps, hosts, only, check_entry}")
    build.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    try:
        request = json.load(sys.stdin)
        targets, host_keys = {}, {}
        for host, facts in sorted((request.get("hosts") or {}).items()):
            target = target_of(facts["python"], facts["arch"], facts["glibc"])
            targets[target.key] = target
            host_keys[host] = target.key
        if not targets:
            raise PyfleetError("no web host to deploy to; check the hosts of pyfleet_apps and --limit")
        artifacts = build_all(request.get("apps") or [], targets, args.out,
                              check_entry=request.get("check_entry", True), only=request.get("only"))
        json.dump({"artifacts": artifacts, "targets": host_keys}, sys.stdout)
    except PyfleetError as exc:
        json.dump({"error": str(exc)}, sys.stdout)
    except Exception as exc:  # one line for Ansible, never a traceback in the play output
        json.dump({"error": f"{type(exc).__name__}: {exc}"}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
