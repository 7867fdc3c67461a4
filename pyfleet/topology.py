"""Which host runs what, from the inventory alone: validation, a table and an SVG picture.

Nothing here contacts a host: the same Python validation the playbooks run
(``pyfleet.apps``, ``pyfleet.workers``) reads the inventory's variables.
"""

from html import escape

from pyfleet.apps import normalize_apps
from pyfleet.errors import PyfleetError
from pyfleet.shell import ROOT
from pyfleet.workers import match_hosts, plan_workers

TIERS = [("loadbalancers", "load balancer"), ("web", "web"), ("brokers", "broker"), ("workers", "workers")]


def plan(inv, check_paths=True):
    """Validate the inventory's apps and Celery tier; return {"apps": [...], "workers": plan}.

    ``check_paths=False`` skips checks of local source paths (the topology of an
    inventory is readable on a machine without the apps' source trees).
    """
    if not inv.hosts:
        raise PyfleetError(f"inventory {inv.path} has no hosts")
    any_vars = next(iter(inv.hosts.values()))
    apps = normalize_apps(any_vars.get("pyfleet_apps") or [], project_dir=str(ROOT),
                          check_paths=check_paths)
    settings = {h: {k: v.get(k) for k in ("celery_worker_types", "celery_beat", "celery_flower") if k in v}
                for h, v in inv.hosts.items()}
    workers = plan_workers(
        any_vars.get("celery_worker_catalogue"), settings, inv.groups, apps,
        routes=any_vars.get("celery_task_routes"), schedule=any_vars.get("celery_beat_schedule"),
        default_type=any_vars.get("celery_task_default_type", "default"),
    )
    return {"apps": apps, "workers": workers}


def app_hosts(inv, app):
    """Inventory hosts that run ``app``, in inventory order (full Ansible pattern syntax)."""
    matched = match_hosts(app["hosts"], inv.groups)
    return [h for h in inv.hosts if h in matched]


def services(inv, the_plan):
    """{host: [service descriptions]} for every inventory host."""
    out = {h: [] for h in inv.hosts}
    for h in inv.groups.get("loadbalancers", []):
        out[h].append("nginx load balancer (TLS)")
    for app in the_plan["apps"]:
        for h in app_hosts(inv, app):
            out[h].append(f"{app['name']} ({app['kind']}, {app['server']})")
    for h in inv.groups.get("web", []):
        if out[h]:
            out[h].insert(0, "nginx")
    for h in inv.groups.get("brokers", []):
        out[h].append("redis broker")
    workers = the_plan["workers"]
    if workers.get("enabled"):
        for h, units in workers["hosts"].items():
            out[h] += [f"worker {u['type']} [{','.join(u['queues'])}]" for u in units]
        if workers.get("beat_host"):
            out[workers["beat_host"]].append("celery beat")
        if workers.get("flower_host"):
            out[workers["flower_host"]].append("flower")
    return out


def rows(inv, the_plan):
    """Table rows (host, address, groups, runs) for ``fab topology``."""
    svc = services(inv, the_plan)
    return [[h, inv.hosts[h].get("ansible_host", "-"), ",".join(inv.groups_of(h)), "; ".join(svc[h]) or "-"]
            for h in inv.hosts]


def svg(inv, the_plan):
    """An SVG picture: one column per tier, a box per host listing what it runs, arrows for traffic."""
    svc = services(inv, the_plan)
    columns = [(label, inv.groups.get(group, [])) for group, label in TIERS]
    placed = {h for _, hosts in columns for h in hosts}
    others = [h for h in inv.hosts if h not in placed]
    if others:
        columns.append(("other", others))
    box_w, gap, line_h = 230, 70, 16
    heights = {h: 34 + line_h * max(1, len(svc[h])) for h in inv.hosts}
    col_h = [sum(heights[h] + 20 for h in hosts) for _, hosts in columns]
    width = len(columns) * (box_w + gap) + gap
    height = max(col_h + [60]) + 80
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto">'
             '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
             f'<text x="{gap}" y="24" font-size="16" font-weight="bold">pyfleet topology: {escape(inv.name)}</text>']
    anchor = {}
    for i, (label, hosts) in enumerate(columns):
        x = gap + i * (box_w + gap)
        parts.append(f'<text x="{x}" y="52" font-weight="bold" fill="#333">{escape(label)}</text>')
        y = 64
        for h in hosts:
            hh = heights[h]
            parts.append(f'<rect x="{x}" y="{y}" width="{box_w}" height="{hh}" rx="6" fill="#eef4fb" stroke="#4a78a8"/>')
            parts.append(f'<text x="{x + 8}" y="{y + 18}" font-weight="bold">{escape(h)}</text>')
            for j, s in enumerate(svc[h] or ["-"]):
                parts.append(f'<text x="{x + 8}" y="{y + 36 + j * line_h}">{escape(s)}</text>')
            anchor[h] = (x, y + hh / 2)
            y += hh + 20
    def arrow(src_group, dst_group):
        for s in inv.groups.get(src_group, []):
            for d in inv.groups.get(dst_group, []):
                (sx, sy), (dx, dy) = anchor[s], anchor[d]
                if sx < dx:
                    parts.append(f'<line x1="{sx + box_w}" y1="{sy}" x2="{dx}" y2="{dy}" stroke="#555" marker-end="url(#a)"/>')
                else:
                    parts.append(f'<line x1="{sx}" y1="{sy}" x2="{dx + box_w}" y2="{dy}" stroke="#555" marker-end="url(#a)"/>')
    arrow("loadbalancers", "web")
    arrow("web", "brokers")
    arrow("workers", "brokers")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
