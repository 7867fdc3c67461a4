"""Which host runs what, from the inventory alone: validation, a table and an SVG picture.

Nothing here contacts a host: the fleet plan (``pyfleet.plan``), the same
function the playbooks' first play runs, reads the inventory's variables.
"""

import jinja2

from pyfleet.shell import ROOT

TIERS = [("loadbalancers", "load balancer"), ("web", "web"), ("brokers", "broker"), ("workers", "workers")]


def services(inv, the_plan):
    """{host: [service descriptions]} for every inventory host."""
    out = {h: [] for h in inv.hosts}
    for h in inv.groups.get("loadbalancers", []):
        out[h].append("nginx load balancer (TLS)")
    for app in the_plan["apps"]:
        for h in the_plan["placement"][app["name"]]["web"]:
            out[h].append(f"{app['name']} ({app['kind']}, {app['server']})")
    for h in inv.groups.get("web", []):
        if out[h]:
            out[h].insert(0, "nginx")
    for h in inv.groups.get("brokers", []):
        out[h].append(f"{inv.hosts[h].get('pyfleet_broker_kind') or 'redis'} broker")
    workers = the_plan["celery"]
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
    return [
        [h, inv.hosts[h].get("ansible_host", "-"), ",".join(inv.groups_of(h)), "; ".join(svc[h]) or "-"]
        for h in inv.hosts
    ]


BOX_WIDTH, GAP, LINE_HEIGHT = 230, 70, 16
# Traffic the picture draws as arrows: (from group, to group).
FLOWS = [("loadbalancers", "web"), ("web", "brokers"), ("workers", "brokers")]


def layout(inv, the_plan):
    """Where the picture puts things: one column per tier, a box per host listing what it runs, arrows for traffic."""
    svc = services(inv, the_plan)
    tiers = [(label, inv.groups.get(group, [])) for group, label in TIERS]
    placed = {h for _, hosts in tiers for h in hosts}
    others = [h for h in inv.hosts if h not in placed]
    if others:
        tiers.append(("other", others))
    columns, boxes = [], {}
    for i, (label, hosts) in enumerate(tiers):
        x, y = GAP + i * (BOX_WIDTH + GAP), 64
        column = {"label": label, "x": x, "boxes": []}
        for h in hosts:
            lines = svc[h] or ["-"]
            box = {
                "host": h,
                "x": x,
                "y": y,
                "width": BOX_WIDTH,
                "height": 34 + LINE_HEIGHT * len(lines),
                "lines": lines,
            }
            column["boxes"].append(box)
            boxes[h] = box
            y += box["height"] + 20
        column["bottom"] = y
        columns.append(column)
    arrows = []
    for src_group, dst_group in FLOWS:
        for s in inv.groups.get(src_group, []):
            for d in inv.groups.get(dst_group, []):
                src, dst = boxes[s], boxes[d]
                sy, dy = src["y"] + src["height"] / 2, dst["y"] + dst["height"] / 2
                if src["x"] < dst["x"]:
                    arrows.append({"x1": src["x"] + BOX_WIDTH, "y1": sy, "x2": dst["x"], "y2": dy})
                else:
                    arrows.append({"x1": src["x"], "y1": sy, "x2": dst["x"] + BOX_WIDTH, "y2": dy})
    return {
        "title": inv.name,
        "columns": columns,
        "arrows": arrows,
        "margin": GAP,
        "line_height": LINE_HEIGHT,
        "width": len(columns) * (BOX_WIDTH + GAP) + GAP,
        "height": max([c["bottom"] - 64 for c in columns] + [60]) + 80,
    }


def svg(inv, the_plan):
    """The SVG picture of ``layout``, drawn by templates/topology.svg.j2."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROOT / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("topology.svg.j2").render(layout(inv, the_plan))
