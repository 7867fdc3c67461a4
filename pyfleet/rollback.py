"""What a rollback switches, decided on the controller before any host changes.

``fab deploy`` and ``fab rollback`` read each app's releases on every host of
the app before and after the playbook (``fleet_state``). The history record of
a deploy keeps, per app and host, the release it ran before and the one it
switched to (``changes``); the summary and ``fab history`` name them.

A plain ``fab rollback`` undoes the last deploy: the newest deploy in the
history that changed an app and that no successful rollback undid yet
(``pick_deploy``). Every app it changed goes back to the release it ran before
on every host of the app; apps it did not change are not touched. A second
plain rollback undoes the deploy before that one (the history is a stack of
undos). With ``--app`` only that app is undone (its last deploy). When the
history does not describe the hosts any more (a deploy made outside fab, e.g.
``fab site`` or ansible-playbook, switched them since), or has no deploy at all,
the app goes back to the newest release older than the one every host serves
that every host still keeps. ``--release`` names the release for every app.

Every target is checked on every host of every app before anything is
switched (``plan_rollback``): a missing release or hosts that do not agree end
in one line naming app, host, release and the fix, and nothing is touched.
"""

import shlex
from dataclasses import dataclass, field

from pyfleet import remote
from pyfleet.errors import PyfleetError

META = ".pyfleet-release.json"


# --- the fleet's releases ------------------------------------------------------------


def probe_command(dirs):
    """A shell command printing ``app|current|release release ...`` per app (complete releases only)."""
    parts = []
    for app, base in sorted(dirs.items()):
        b = shlex.quote(base)
        parts.append(
            f"cur=$(basename \"$(readlink {b}/current 2>/dev/null)\" 2>/dev/null); rels=''; "
            f"for r in $(ls {b}/releases 2>/dev/null | sort); do "
            f'[ -f {b}/releases/$r/{META} ] && rels="$rels $r"; done; '
            f'printf \'%s|%s|%s\\n\' {shlex.quote(app)} "$cur" "$rels"'
        )
    return "; ".join(parts) + "; true"


def parse_probe(text):
    """``{app: {"current": id or None, "releases": [ids, oldest first]}}`` from the probe's output."""
    out = {}
    for line in text.splitlines():
        app, sep, rest = line.partition("|")
        if not sep:
            continue
        current, _, rels = rest.partition("|")
        out[app] = {"current": current.strip() or None, "releases": sorted(rels.split())}
    return out


def fleet_state(inv, specs, apps, hosts_of):
    """``{app: {host: {"current", "releases"}}}`` for every host of each app, read in parallel.

    ``specs``: ``{app: normalised app}`` (for base_dir); ``hosts_of(spec)``: the app's hosts.
    """
    per_host = {}
    for app in apps:
        for host in hosts_of(specs[app]):
            per_host.setdefault(host, {})[app] = specs[app]["base_dir"]
    if not per_host:
        return {app: {} for app in apps}
    outputs = {}
    hosts = list(per_host)
    # One command per host (each host has its own set of apps).
    for host, (code, out) in _run_each(inv, {h: probe_command(per_host[h]) for h in hosts}).items():
        outputs[host] = parse_probe(out) if code == 0 else {}
    state = {app: {} for app in apps}
    for host, dirs in per_host.items():
        for app in dirs:
            state[app][host] = outputs[host].get(app) or {"current": None, "releases": []}
    return state


def _run_each(inv, commands):
    """Run a different command on each host (in parallel, grouped by identical command)."""
    by_command = {}
    for host, command in commands.items():
        by_command.setdefault(command, []).append(host)
    results = {}
    for command, hosts in by_command.items():
        results.update(remote.run_on(inv, hosts, command))
    return results


def changes(before, after):
    """``{app: {host: {"from", "to"}}}``: each host's release of each app before and after."""
    out = {}
    for app in sorted(set(before) | set(after or {})):
        hosts = set(before.get(app, {})) | set((after or {}).get(app, {}))
        out[app] = {
            h: {
                "from": (before.get(app, {}).get(h) or {}).get("current"),
                "to": ((after or {}).get(app, {}).get(h) or {}).get("current"),
            }
            for h in sorted(hosts)
        }
    return out


def changed_apps(change_map):
    """The apps some host of which switched release."""
    return sorted(a for a, hosts in (change_map or {}).items() if any(c["from"] != c["to"] for c in hosts.values()))


def switched_hosts(change_map):
    return sorted({h for hosts in (change_map or {}).values() for h, c in hosts.items() if c["from"] != c["to"]})


def releases_now(change_map):
    """``{app: release}`` the changed apps serve now, or ``{app: None}`` when their hosts disagree."""
    out = {}
    for app in changed_apps(change_map):
        now = {c["to"] for c in change_map[app].values()}
        out[app] = now.pop() if len(now) == 1 else None
    return out


def release_text(change_map):
    """The history's release column: the one id of every changed app, or app=id each; 'unchanged'."""
    now = releases_now(change_map)
    if not now:
        return "unchanged"
    ids = set(now.values())
    if len(ids) == 1 and None not in ids:
        return ids.pop()
    return ", ".join(f"{app}={rel or 'SPLIT'}" for app, rel in sorted(now.items()))


def summary_rows(change_map):
    """Rows (app, host, serves, before) of every host of every app the action touched or meant to."""
    return [
        [app, host, c["to"] or "-", c["from"] or "-"]
        for app, hosts in sorted(change_map.items())
        for host, c in sorted(hosts.items())
    ]


def verdicts(change_map):
    """One line per app: every host on one release, or SPLIT with each host's release."""
    lines = []
    for app, hosts in sorted(change_map.items()):
        now = {c["to"] for c in hosts.values()}
        if len(now) == 1:
            lines.append(f"{app}: every host on {now.pop() or 'nothing'}")
        else:
            lines.append(
                f"{app}: SPLIT: "
                + ", ".join(f"{h} {c['to'] or '-'}" for h, c in sorted(hosts.items()))
                + f"; finish with fab rollback or fab deploy --app {app}"
            )
    return lines


# --- what a rollback switches ----------------------------------------------------------


@dataclass
class Plan:
    """``targets``: {app: release}; ``switch``: {app: {host: release}} (hosts not already on it);
    ``undoes``: {app: deploy record id} for apps taken from the history; ``notes``: lines to print."""

    targets: dict = field(default_factory=dict)
    switch: dict = field(default_factory=dict)
    undoes: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def hosts(self):
        return sorted({h for hosts in self.switch.values() for h in hosts})


def pick_deploy(records, apps):
    """The newest deploy record (oldest-first ``records``) that changed one of ``apps`` not undone yet.

    Returns ``(record, [apps it changed that are still to undo])`` or ``(None, [])``.
    A rollback undoes a deploy for an app when it succeeded and names it in ``undoes``.
    """
    undone = {
        (rid, app)
        for r in records
        if r.get("action") == "rollback" and r.get("result") == "ok"
        for app, rid in (r.get("undoes") or {}).items()
    }
    for record in reversed(records):
        if record.get("action") != "deploy" or not record.get("changes") or not record.get("id"):
            continue
        todo = [a for a in changed_apps(record["changes"]) if a in apps and (record["id"], a) not in undone]
        if todo:
            return record, todo
    return None, []


def _the_one_release(app, by_host, what, pick):
    """The release every host of ``by_host`` names; else one line ("app X" + ``what``) suggesting ``--release``."""
    distinct = sorted(set(by_host.values()))
    if len(distinct) > 1:
        raise PyfleetError(
            f"app {app}{what} ("
            + ", ".join(f"{h} {r}" for h, r in sorted(by_host.items()))
            + f"); nothing was switched; name the one to return to: "
            f"fab rollback --app {app} --release {distinct[pick]}"
        )
    return distinct[0]


def _from_history(app, record, hosts):
    """The release ``app`` ran before ``record``'s deploy; None when the hosts moved on since."""
    ch = record["changes"][app]
    when = record.get("when", "?")
    before = {h: c["from"] for h, c in ch.items()}
    first = sorted(h for h, rel in before.items() if rel is None)
    if first:
        raise PyfleetError(
            f"app {app} had no release on {first[0]} before the deploy of {when} (its first there); "
            f"nothing to roll back to there, nothing was switched; name a release every host keeps: "
            f"fab rollback --app {app} --release ID (fab releases lists them)"
        )
    target = _the_one_release(app, before, f" ran different releases before the deploy of {when}", pick=-1)
    moved = sorted(h for h, s in hosts.items() if s["current"] not in (target, (ch.get(h) or {}).get("to")))
    if moved:
        return None, (
            f"{app}: {moved[0]} serves {hosts[moved[0]]['current'] or 'nothing'}, not what the deploy of "
            f"{when} left there; going back from the releases the hosts keep"
        )
    return target, None


def _from_hosts(app, hosts):
    """The newest release older than the one every host of ``app`` serves, that every host keeps."""
    if not hosts:
        raise PyfleetError(f"app {app} runs on no host of this inventory; nothing to roll back")
    serving = {h: s["current"] for h, s in hosts.items()}
    missing = sorted(h for h, rel in serving.items() if rel is None)
    if missing:
        raise PyfleetError(
            f"app {app} is not deployed on {missing[0]} (no current release); nothing was switched; "
            f"deploy it first: fab deploy --app {app}"
        )
    current = _the_one_release(app, serving, ": hosts serve different releases", pick=0)
    for host, state in sorted(hosts.items()):
        if not [r for r in state["releases"] if r < current]:
            raise PyfleetError(
                f"app {app} on {host} has no release older than {current} (it keeps "
                f"{', '.join(state['releases']) or 'none'}); nothing to roll back to, nothing was switched"
            )
    common = set.intersection(*(set(s["releases"]) for s in hosts.values()))
    older = sorted(r for r in common if r < current)
    if not older:
        raise PyfleetError(
            f"app {app}: no release older than {current} is on every host ("
            + "; ".join(f"{h}: {', '.join(r for r in s['releases'] if r < current)}" for h, s in sorted(hosts.items()))
            + f"); nothing was switched; name one: fab rollback --app {app} --release ID"
        )
    return older[-1]


def plan_rollback(records, state, apps, release=None, app_given=False):
    """Decide every app's target and check it on every host; raise one line, touching nothing, if any is wrong.

    ``records``: the history, oldest first; ``state``: ``fleet_state`` of ``apps``;
    ``release``: a named release (``--release``); ``app_given``: ``--app`` was given.
    """
    result = Plan()
    if release:
        result.targets = dict.fromkeys(apps, release)
    else:
        record, todo = pick_deploy(records, apps)
        if record and not app_given:
            apps = todo
            result.notes.append(
                f"undoing the deploy of {record.get('when')} by {record.get('who')} "
                f"(release {record.get('release')}): {', '.join(todo)}"
            )
        for app in apps:
            target = None
            if record and app in todo:
                target, note = _from_history(app, record, state.get(app, {}))
                if target:
                    result.undoes[app] = record["id"]
                else:
                    result.notes.append(note)
            if target is None:
                target = _from_hosts(app, state.get(app, {}))
            result.targets[app] = target
    for app, target in result.targets.items():
        hosts = state.get(app, {})
        if not hosts:
            raise PyfleetError(f"app {app} runs on no host of this inventory; nothing to roll back")
        for host, host_state in sorted(hosts.items()):
            if target not in host_state["releases"]:
                raise PyfleetError(
                    f"release {target} of app {app} is not on {host} (it keeps "
                    f"{', '.join(host_state['releases']) or 'none'}); nothing was switched; "
                    "fab releases lists the releases each host keeps"
                )
        switch = {h: target for h, s in sorted(hosts.items()) if s["current"] != target}
        if switch:
            result.switch[app] = switch
    return result
