"""The order a deploy or rollback switches its hosts in: web hosts in batches, then worker hosts in waves.

Web hosts are drained from the load balancers while they switch, so they go a
batch at a time (``deploy_batch_size``, Ansible's ``serial``) and the others
keep serving. Worker-only hosts serve no request: a warm restart stops a worker
taking new tasks while its running ones finish, and its queue waits in the
broker meanwhile. They switch in waves, as many at once as can be without two
hosts that run the same worker type in one wave: a queue served by several
hosts always keeps a consumer, and hosts of different types (the lab's) switch
side by side instead of one after another.
"""


def worker_waves(hosts, types_of):
    """``hosts`` (in order) grouped into waves; no two hosts of a wave share a worker type.

    ``types_of``: host -> the worker types it runs. Greedy, in order: each host
    joins the first wave it shares no type with, else starts a new one.
    """
    waves = []
    for host in hosts:
        types = set(types_of.get(host) or ())
        for wave in waves:
            if not types & wave["types"]:
                wave["hosts"].append(host)
                wave["types"] |= types
                break
        else:
            waves.append({"hosts": [host], "types": types})
    return [wave["hosts"] for wave in waves]


def plan_rollout(hosts, placement, celery_hosts):
    """Which hosts switch in which play, in what order.

    ``hosts``: the hosts that switch, in inventory order; ``placement``: the
    fleet plan's {app: {web: [hosts], workers: [hosts]}} (a host that serves an
    app goes to the web play, even if it runs workers too); ``celery_hosts``:
    the Celery plan's host -> [{type, ...}] (``pyfleet.workers``).
    Returns ``{"web": [hosts], "workers": [hosts, wave after wave],
    "worker_serial": [wave sizes]}`` for the playbooks' two rollout plays.
    """
    web_hosts = {host for where in placement.values() for host in where["web"]}
    web = [h for h in hosts if h in web_hosts]
    types_of = {host: [unit["type"] for unit in units] for host, units in (celery_hosts or {}).items()}
    waves = worker_waves([h for h in hosts if h not in web_hosts], types_of)
    return {
        "web": web,
        "workers": [host for wave in waves for host in wave],
        "worker_serial": [len(wave) for wave in waves],
    }
