"""The fleet plan: what every host runs, built once from the inventory and checked whole.

``build`` is the one function that turns an inventory into what the roles
render. The playbooks call it in their first play (playbooks/plan.yml, through
the ``pyfleet_plan`` action, with Ansible's hostvars) and every role reads its
result; ``fab topology``, ``check``, ``deploy`` and ``site`` call it on the
controller with the variables ``ansible-inventory`` reads. So both accept and
refuse the same inventories, and a mistake stops with one line before any host
is contacted.

Fleet-wide settings (the apps, the Celery catalogue, routes and schedule) are
read from the first host of group ``all``: they belong in ``group_vars/all``.
Per-host settings (worker types, beat, Flower, addresses, ports) are read from
each host. The groups have fixed names: ``loadbalancers``, ``web`` (the apps'
default ``hosts``), ``brokers`` and ``workers``.
"""

import json
from collections.abc import Mapping

from pyfleet import acme, addresses, firewall, orphans, role_arguments
from pyfleet.apps import normalize_apps
from pyfleet.broker import BROKER_KIND, RABBITMQ_PASSWORDS, broker_kind, broker_url
from pyfleet.catalogue import CATALOGUE
from pyfleet.errors import PyfleetError
from pyfleet.flower import FLOWER, FLOWER_KEYS
from pyfleet.patterns import all_hosts, match_hosts
from pyfleet.shell import ROOT
from pyfleet.workers import DEFAULT_TYPE, HOST_KEYS, ROUTES, SCHEDULE, plan_workers

APPS = "pyfleet_apps"
LOADBALANCERS, WEB, BROKERS, WORKERS = "loadbalancers", "web", "brokers", "workers"
# The web hosts' nginx port, which the load balancers proxy to.
NGINX_PORT, DEFAULT_NGINX_PORT = "nginx_http_port", 80
# RabbitMQ's users need long passwords (roles/rabbitmq).
MIN_RABBITMQ_PASSWORD = 16


def build(hostvars, groups, project_dir=".", check_paths=True, check_addresses=True):
    """The plan of the fleet, or PyfleetError (one line) at the first mistake.

    ``hostvars``: host -> variables (Ansible's ``hostvars``, or the plain dicts
    ``ansible-inventory --list`` gives). ``groups``: group -> hosts.
    ``project_dir``: what apps' relative paths are relative to;
    ``check_paths=False`` skips checking that they exist.
    ``check_addresses=False`` skips the checks that the broker, Flower and
    load balancer addresses are IPs (``fab topology`` of a lab not yet up:
    its hosts get their addresses when it starts).

    Returns plain data (JSON types)::

        apps         the normalised apps (pyfleet.apps), in inventory order
        placement    app -> {web: [hosts serving it], workers: [hosts running only its Celery units]}
        hosts        host -> {apps: [specs it serves], deploy_apps: [specs a deploy puts there, with web: bool],
                     worker_app: the app whose Celery units run there without serving it, or None}
        upstreams    one per app: {app, name, domains, health_path, servers: [{host, address, port, endpoint}]}
        loadbalancers  [{host, address}]: whose X-Forwarded-For the web hosts trust
        broker_kind  pyfleet_broker_kind of the broker host: redis (default) or rabbitmq
        celery       the Celery plan (pyfleet.workers.plan_workers), {enabled: false} without Celery
        celery_apps  [the Celery app's name] or []
        producer_ip_allow  {Celery app: [broker IP]}: what its web units may reach
        firewall     host -> {enabled, rules}: what its firewall accepts (pyfleet.firewall);
                     {} without ``check_addresses`` (it needs every address)
    """
    groups = {name: list(members or []) for name, members in (groups or {}).items()}
    everyone = all_hosts(groups)
    if not everyone:
        raise PyfleetError("the inventory has no hosts; add hosts to groups loadbalancers, web, brokers and workers")
    fleet = addresses.host_vars(hostvars, everyone[0])
    apps = normalize_apps(fleet.get(APPS) or [], project_dir=project_dir, check_paths=check_paths)
    placement = {app["name"]: _placement(index, app, groups) for index, app in enumerate(apps)}
    settings = {host: _celery_settings(addresses.host_vars(hostvars, host)) for host in everyone}
    brokers = groups.get(BROKERS) or everyone[:1]
    kind = broker_kind(addresses.host_vars(hostvars, brokers[0]).get(BROKER_KIND))
    celery = plan_workers(
        fleet.get(CATALOGUE),
        settings,
        groups,
        apps,
        routes=fleet.get(ROUTES),
        schedule=fleet.get(SCHEDULE),
        default_type=fleet.get(DEFAULT_TYPE) or "default",
        hostvars=hostvars if check_addresses else None,
        kind=kind,
    )
    if celery["enabled"]:
        _check_broker_password(celery, hostvars)
    # The load balancers' TLS settings (an ACME directory, its terms): before any host is contacted.
    for host in groups.get(LOADBALANCERS, []):
        acme.check_settings(host, addresses.host_vars(hostvars, host))
    if check_addresses:
        for host in everyone:
            addresses.check_private(host, hostvars)
    plan = {
        "apps": apps,
        "placement": placement,
        "hosts": {host: _host(host, apps, placement) for host in everyone},
        "upstreams": [_upstream(app, placement[app["name"]]["web"], hostvars) for app in apps],
        "loadbalancers": [
            {"host": h, "address": addresses.private_address(h, hostvars)} for h in groups.get(LOADBALANCERS, [])
        ],
        "broker_kind": kind,
        "celery": celery,
        # The apps with Celery (a RabbitMQ vhost and user each), and the broker IP their web units may reach.
        "celery_apps": [celery["app"]["name"]] if celery["enabled"] else [],
        "producer_ip_allow": {celery["app"]["name"]: [celery["broker_ip"]]}
        if celery["enabled"] and celery["broker_ip"]
        else {},
    }
    for host in everyone:  # what the last play of site.yml keeps there; the rest goes (pyfleet.orphans)
        plan["hosts"][host]["wanted"] = orphans.wanted(plan, groups, host)
    if check_addresses:
        plan["firewall"] = firewall.plan_firewall(
            groups, hostvars, plan["upstreams"], plan["loadbalancers"], kind, celery.get("flower")
        )
    else:
        plan["firewall"] = {}
    # Last: the checks above say more about the variables they know.
    role_arguments.check(hostvars, everyone)
    # Plain JSON types: Ansible stores the plan as a fact, and AppSpec and
    # Ansible's own str/dict subclasses must not leak into it.
    return json.loads(json.dumps(plan))


def from_inventory(inv, check_paths=True, check_addresses=None, project_dir=None):
    """``build`` on an inventory read on the controller (``pyfleet.inventory.load``): the pre-check
    every command runs before it touches a host.

    ``check_paths=False`` skips what only a deploy needs at hand: the apps' local
    source paths, and (unless ``check_addresses``) the hosts' IP addresses, which
    a lab that is not up yet does not have. ``project_dir``: default, the repository.
    """
    if check_addresses is None:
        check_addresses = check_paths
    if project_dir is None:
        project_dir = str(ROOT)
    if not inv.hosts:
        raise PyfleetError(
            f"inventory {inv.path} has no hosts; add hosts to groups loadbalancers, web, brokers and workers"
        )
    return build(ControllerHostVars(inv.hosts, inv.groups), inv.groups, project_dir, check_paths, check_addresses)


class ControllerHostVars(Mapping):
    """Inventory variables templated on access, as the playbooks' hostvars give them.

    ``ansible-inventory --list`` prints variables as written: a value like
    ``"{{ ansible_host }}"`` is rendered here with Ansible's own templar and the
    host's variables, so the controller checks what the hosts would get. A
    value that needs what only a play has (facts, vault secrets) stays as written.
    """

    def __init__(self, hosts, groups):
        self._hosts, self._groups, self._views = hosts, groups, {}
        self._templar = None

    def __getitem__(self, host):
        if host not in self._views:
            self._views[host] = _TemplatedVars(host, self._hosts[host], self._groups, self._template)
        return self._views[host]

    def __iter__(self):
        return iter(self._hosts)

    def __len__(self):
        return len(self._hosts)

    def _template(self, value, variables):
        """``value`` rendered with ``variables`` by one shared templar (a templar per host costs ~2 ms)."""
        from ansible.errors import AnsibleError  # Ansible loads slowly: only when a value needs it
        from ansible.parsing.dataloader import DataLoader
        from ansible.template import Templar, trust_as_template

        if self._templar is None:
            self._templar = Templar(loader=DataLoader())
        self._templar.available_variables = variables
        try:
            return self._templar.template(_trusted(value, trust_as_template))
        except AnsibleError:
            return value


class _TemplatedVars(Mapping):
    """One host's variables; strings with ``{{`` are templated when read."""

    def __init__(self, host, variables, groups, template):
        self._vars = dict(variables, inventory_hostname=host, groups=groups)
        self._render = template

    def __getitem__(self, key):
        value = self._vars[key]
        return self._render(value, self._vars) if "{{" in json.dumps(value, default=str) else value

    def __iter__(self):
        return iter(self._vars)

    def __len__(self):
        return len(self._vars)


def _trusted(value, trust):
    """``value`` with every string marked as a template (Ansible templates only trusted strings)."""
    if isinstance(value, str):
        return trust(value)
    if isinstance(value, dict):
        return {k: _trusted(v, trust) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v, trust) for v in value]
    return value


def _placement(index, app, groups):
    """Where an app runs: its web hosts (``hosts``) and the hosts of ``celery.hosts`` without them.

    An app may have no web host only when it runs Celery units somewhere and no
    load balancer would send its domains to nobody (a worker-only inventory).
    """
    web = match_hosts(app["hosts"], groups)
    pattern = (app.get("celery") or {}).get("hosts")
    workers = match_hosts(pattern, groups) if isinstance(pattern, str) and pattern.strip() else []
    if not web and (not workers or groups.get(LOADBALANCERS)):
        raise PyfleetError(
            f"{APPS}[{index}].hosts (app {app['name']}): {app['hosts']!r} matches no inventory host; "
            f"add hosts to that group or set hosts to a group that has some"
        )
    return {"web": web, "workers": [h for h in workers if h not in web]}


def _celery_settings(hv):
    """A host's Celery variables (and Flower's, on the Flower host) that are set."""
    keys = HOST_KEYS + FLOWER_KEYS if hv.get(FLOWER) else HOST_KEYS
    return {key: hv.get(key) for key in keys if hv.get(key) is not None}


def _host(host, apps, placement):
    """The apps a host serves, and those a deploy puts there (``web: false``: Celery units only)."""
    served = [app for app in apps if host in placement[app["name"]]["web"]]
    deployed = [
        dict(app, web=app in served) for app in apps if app in served or host in placement[app["name"]]["workers"]
    ]
    worker_only = [app["name"] for app in deployed if not app["web"]]
    return {"apps": served, "deploy_apps": deployed, "worker_app": worker_only[0] if worker_only else None}


def _upstream(app, hosts, hostvars):
    """The load balancers' upstream of one app: its web hosts' nginx."""
    servers = []
    for host in hosts:
        address = addresses.private_address(host, hostvars)
        port = addresses.port(addresses.host_vars(hostvars, host).get(NGINX_PORT), NGINX_PORT, host, DEFAULT_NGINX_PORT)
        servers.append({"host": host, "address": address, "port": port, "endpoint": addresses.endpoint(address, port)})
    return {
        "app": app["name"],
        "name": app["upstream"],
        "domains": list(app["domains"]),
        "health_path": app["health_path"],
        "servers": servers,
    }


def _check_broker_password(celery, hostvars):
    """The password the Celery clients send is set (the URL's own checks), long enough for RabbitMQ."""
    broker = celery["broker_host"]
    hv = addresses.host_vars(hostvars, broker)
    app = celery["app"]["name"]
    if celery["broker_kind"] == "rabbitmq":
        password = (hv.get(RABBITMQ_PASSWORDS) or {}).get(app)
        if isinstance(password, str) and (len(password) < MIN_RABBITMQ_PASSWORD or password.startswith("-")):
            raise PyfleetError(
                f"{RABBITMQ_PASSWORDS}.{app} on {broker}: shorter than {MIN_RABBITMQ_PASSWORD} characters or "
                f"starting with -; set it from ansible-vault ({RABBITMQ_PASSWORDS}: {{{app}: ...}})"
            )
    else:
        password = hv.get("redis_password")
    broker_url([broker], hostvars, password, kind=celery["broker_kind"], app=app)
