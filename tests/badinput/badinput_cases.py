"""The corpus: the lab inventory plus one mistake each, and the one line every command must answer.

``expected`` is the PyfleetError text (``fab`` prints it as ``error: <text>`` on the
last line of stderr); ``{inv}`` stands for the case's inventory directory.
``commands``: the fab commands that must refuse it (in-process, no host reached).
``xfail``: a mistake that would still reach the hosts (none today: the fleet plan
checks everything before any host and before a deploy's lock).
"""

import os
from dataclasses import dataclass, field

ALL = ("topology", "check", "deploy", "site --check")
# fab topology reads the inventory alone: it skips the checks of local source paths.
WITH_PATHS = ("check", "deploy", "site --check")
# ... and the hosts' addresses (a lab that is not up has none yet).
WITH_ADDRESSES = WITH_PATHS
ONE_PLAN = "needs the one-plan check"
DELETE = object()


@dataclass
class Case:
    id: str
    cls: str
    mutate: object
    expected: str
    commands: tuple = ALL
    xfail: bool = False
    reason: str = field(default=ONE_PLAN)


# --- mutations ------------------------------------------------------------------


def _set(mapping, changes):
    for key, value in changes.items():
        if value is DELETE:
            mapping.pop(key, None)
        else:
            mapping[key] = value


def app(index, **changes):
    """Change keys of pyfleet_apps[index] (DELETE removes one)."""

    def mutate(data, _dir):
        _set(data["group_vars/all/apps.yml"]["pyfleet_apps"][index], changes)

    return mutate


def apps(value):
    def mutate(data, _dir):
        data["group_vars/all/apps.yml"]["pyfleet_apps"] = value(data["group_vars/all/apps.yml"]["pyfleet_apps"])

    return mutate


def gvars(name, **changes):
    """Change variables of group_vars/all/<name>.yml."""

    def mutate(data, _dir):
        _set(data.setdefault(f"group_vars/all/{name}.yml", {}), changes)

    return mutate


def catalogue(type_name, **changes):
    def mutate(data, _dir):
        _set(data["group_vars/all/workers.yml"]["celery_worker_catalogue"][type_name], changes)

    return mutate


def hvars(host, **changes):
    """Change variables of host_vars/<host>.yml."""

    def mutate(data, _dir):
        _set(data.setdefault(f"host_vars/{host}.yml", {}), changes)

    return mutate


def group(name, hosts):
    """Set the hosts of a group of hosts.yml (None removes the group)."""

    def mutate(data, _dir):
        children = data["hosts.yml"]["all"]["children"]
        if hosts is None:
            children.pop(name, None)
        else:
            children[name] = {"hosts": {h: {} for h in hosts}}

    return mutate


def raw(rel, text):
    """Replace a file with this text or these bytes."""

    def mutate(data, _dir):
        data[rel] = text

    return mutate


def both(*mutations):
    def mutate(data, directory):
        for m in mutations:
            m(data, directory)

    return mutate


def big_file(rel, size, garbage=True):
    """A file of ``size`` bytes (random garbage, or a valid YAML comment padding)."""

    def mutate(data, _dir):
        data[rel] = os.urandom(size) if garbage else b"---\nx: 1\n#" + b"x" * (size - 10) + b"\n"

    return mutate


def requirements_file(text, index=0):
    """pyfleet_apps[index].requirements: a file of the case's own with this text."""

    def mutate(data, directory):
        f = directory / "requirements.txt"
        data["requirements.txt"] = text
        data["group_vars/all/apps.yml"]["pyfleet_apps"][index]["requirements"] = str(f)

    return mutate


HOSTS = """---
all:
  children:
    loadbalancers:
      hosts:
        lb1: {}
    web:
      hosts:
        web1: {}
        web2: {}
    brokers:
      hosts:
        broker1: {}
    workers:
      hosts:
        worker1: {}
        worker2: {}
"""


# --- the corpus -------------------------------------------------------------------

CASES = [
    # YAML syntax: the file, line and column, the variable, the fix.
    Case(
        "yaml-unclosed-flow-list",
        "yaml",
        raw(
            "group_vars/all/common.yml",
            "---\ncommon_timezone: UTC\ncommon_locales: [en_US.UTF-8, de_DE.UTF-8\ncommon_x: 1\n",
        ),
        "inventory {inv}: group_vars/all/common.yml:4:9 (variable common_locales): expected ',' or ']', but got ':' (while parsing a flow sequence at line 3); fix the YAML syntax there",
    ),
    Case(
        "yaml-bad-indent-hosts",
        "yaml",
        raw("hosts.yml", HOSTS.replace("        web2: {}", "          web2: {}")),
        "inventory {inv}: hosts.yml:10:11: indented deeper than the block at line 9 allows; align it with the keys above it",
    ),
    Case(
        "yaml-tab-host-vars",
        "yaml",
        raw("host_vars/worker1.yml", "---\ncelery_worker_types:\n\t- default\n"),
        "inventory {inv}: host_vars/worker1.yml:3:1 (variable celery_worker_types): found character '\\t' that cannot start any token (while scanning for the next token); indent with spaces, not tabs",
    ),
    Case(
        "yaml-unclosed-quote",
        "yaml",
        raw(
            "group_vars/all/broker.yml",
            "---\npyfleet_broker_kind: redis\nredis_password: 'abc\nredis_maxmemory: 128mb\n",
        ),
        "inventory {inv}: group_vars/all/broker.yml:5:1 (variable redis_password): found unexpected end of stream (while scanning a quoted scalar at line 3); fix the YAML syntax there",
    ),
    Case(
        "yaml-duplicate-host",
        "yaml",
        raw("hosts.yml", HOSTS.replace("        web2: {}", "        web2: {}\n        web1: {}")),
        "inventory {inv}: hosts.yml:11:9: duplicate key 'web1' (first at line 9); a host appears once per group; remove one",
    ),
    Case(
        "yaml-duplicate-variable",
        "yaml",
        raw("group_vars/all/common.yml", "---\ncommon_timezone: UTC\ncommon_timezone: Europe/Berlin\n"),
        "inventory {inv}: group_vars/all/common.yml:3:1 (variable common_timezone): duplicate key 'common_timezone' (first at line 2); keep one of them (Ansible refuses both)",
    ),
    Case(
        "yaml-vars-file-is-a-list",
        "yaml",
        raw("group_vars/all/common.yml", "---\n- common_timezone: UTC\n"),
        "inventory {inv}: group_vars/all/common.yml: expected a mapping of variable: value at the top, got a list; write one 'name: value' per variable",
    ),
    Case(
        "yaml-python-tag",
        "yaml",
        raw("group_vars/all/common.yml", "---\ncommon_timezone: !!python/object/apply:os.system [id]\n"),
        "inventory {inv}: group_vars/all/common.yml:2:18 (variable common_timezone): could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'; remove the tag or quote the value",
    ),
    Case(
        "yaml-not-utf8",
        "yaml",
        raw("host_vars/web1.yml", b"---\nansible_host: 127.0.0.12\nnote: \xff\xfe caf\xe9\n"),
        "inventory {inv}: host_vars/web1.yml:3: byte 35 is not UTF-8 text (a binary file?); save it as UTF-8 or move it out of the inventory directory",
    ),
    Case(
        "yaml-group-key-typo",
        "yaml",
        raw("hosts.yml", HOSTS.replace("  children:", "  childs:")),
        "inventory {inv}: group all has key 'childs', which Ansible skips with everything under it (a group has only vars, children and hosts); did you mean children? rename it",
    ),
    # Oversized files: refused before anything parses them.
    Case(
        "size-garbage-hosts",
        "size",
        big_file("hosts.yml", 20 * 1024 * 1024),
        "inventory {inv}: hosts.yml is 20.0 MiB, over the 1 MiB limit of an inventory file (thousands of hosts take a few hundred KB); check it is the file you meant, or split it into group_vars/ and host_vars/ files",
    ),
    Case(
        "size-group-vars-just-over",
        "size",
        big_file("group_vars/all/big.yml", 1024 * 1024 + 1, garbage=False),
        "inventory {inv}: group_vars/all/big.yml is 1.0 MiB, over the 1 MiB limit of an inventory file (thousands of hosts take a few hundred KB); check it is the file you meant, or split it into group_vars/ and host_vars/ files",
    ),
    # The inventory itself.
    Case(
        "inventory-no-hosts",
        "inventory",
        raw("hosts.yml", "---\nall:\n  children:\n    web: {}\n"),
        "inventory {inv} has no hosts; add hosts under all.children.<group>.hosts in {inv}/hosts.yml",
    ),
    Case(
        "inventory-control-host-unknown",
        "inventory",
        gvars("common", pyfleet_control_host="lb9"),
        "pyfleet_control_host: 'lb9' is not an inventory host; set it to one of lb1, web1, web2, broker1, worker1, worker2",
        commands=("deploy",),
    ),
    # App specs: unknown, duplicate and missing keys.
    Case(
        "app-unknown-key",
        "app keys",
        app(0, domain=["hello.lab.test"]),
        "pyfleet_apps[0].domain (app hello): unknown key; did you mean domains? allowed keys: base_dir, celery, domains, entry, env, health_path, hooks, hosts, keep_releases, kind, name, requirements, sandbox_relax, secrets, server, source, static_dir, static_url, threads, user, workers",
    ),
    Case(
        "app-missing-entry",
        "app keys",
        app(1, entry=DELETE),
        "pyfleet_apps[1].entry (app hello-async): is missing; add entry: myapp.wsgi:app",
    ),
    Case(
        "app-duplicate-key",
        "app keys",
        raw("group_vars/all/apps.yml", "---\npyfleet_apps:\n  - name: hello\n    kind: wsgi\n    kind: asgi\n"),
        "inventory {inv}: group_vars/all/apps.yml:5:5 (variable pyfleet_apps): duplicate key 'kind' (first at line 4); keep one of them (Ansible refuses both)",
    ),
    Case(
        "app-unknown-hook-key",
        "app keys",
        app(0, hooks={"onec": ["true"]}),
        "pyfleet_apps[0].hooks.onec (app hello): unknown key; did you mean once? allowed keys: every_host, once",
    ),
    Case(
        "apps-not-a-list",
        "app keys",
        gvars("apps", pyfleet_apps={"name": "hello"}),
        "pyfleet_apps: expected a list of app mappings, got a mapping; write pyfleet_apps: [{name: myapp, ...}]",
    ),
    # App names, kinds, servers, entries.
    Case(
        "app-bad-name",
        "app names",
        app(0, name="Hello_World"),
        "pyfleet_apps[0].name: 'Hello_World' is not a valid app name (a lowercase letter, then up to 30 lowercase letters, digits or '-'); rename it, e.g. name: hello-world",
    ),
    Case(
        "app-duplicate-name",
        "app names",
        app(1, name="hello"),
        "pyfleet_apps[1].name: app name hello is already used by pyfleet_apps[0]; give each app a unique name",
    ),
    Case(
        "app-bad-kind",
        "app kinds",
        app(0, kind="wsgx"),
        "pyfleet_apps[0].kind (app hello): 'wsgx' is not one of wsgi, asgi; set kind: wsgi or kind: asgi",
    ),
    Case(
        "app-server-cannot-serve-kind",
        "app kinds",
        app(0, server="uvicorn"),
        "pyfleet_apps[0].server (app hello): 'uvicorn' cannot serve wsgi apps; use server: gunicorn",
    ),
    Case(
        "app-threads-for-asgi",
        "app kinds",
        app(1, threads=4),
        "pyfleet_apps[1].threads (app hello-async): 4 threads only apply to wsgi apps; remove threads",
    ),
    Case(
        "app-entry-no-colon",
        "app entries",
        app(0, entry="sampleapp.wsgi"),
        "pyfleet_apps[0].entry (app hello): 'sampleapp.wsgi' is not module:callable; write e.g. entry: myapp.wsgi:app",
    ),
    Case(
        "app-entry-keyword",
        "app entries",
        app(0, entry="sampleapp.class:app"),
        "pyfleet_apps[0].entry (app hello): module 'sampleapp.class' in 'sampleapp.class:app' is not a dotted Python name; write e.g. entry: myapp.wsgi:app",
    ),
    Case(
        "app-celery-app-syntax",
        "app entries",
        app(0, celery={"app": "sampleapp.tasks", "hosts": "workers"}),
        "pyfleet_apps[0].celery.app (app hello): 'sampleapp.tasks' is not module:attribute; write e.g. app: myapp.tasks:app",
    ),
    # Other app values.
    Case(
        "app-workers-zero",
        "app values",
        app(0, workers=0),
        "pyfleet_apps[0].workers (app hello): 0 is not an integer from 1 to 64; set workers: 1..64",
    ),
    Case(
        "app-keep-releases-too-many",
        "app values",
        app(0, keep_releases=100),
        "pyfleet_apps[0].keep_releases (app hello): 100 is not an integer from 1 to 50; set keep_releases: 1..50",
    ),
    Case(
        "app-health-path-relative",
        "app values",
        app(0, health_path="healthz"),
        "pyfleet_apps[0].health_path (app hello): 'healthz' is not a URL path starting with /; set e.g. health_path: /healthz",
    ),
    Case(
        "app-static-url-no-slash",
        "app values",
        app(0, static_url="/static"),
        "pyfleet_apps[0].static_url (app hello): '/static' does not end with /; set static_url: /static/",
    ),
    Case(
        "app-env-reserved-prefix",
        "app values",
        app(0, env={"PYFLEET_RELEASE": "x"}),
        "pyfleet_apps[0].env.PYFLEET_RELEASE (app hello): the PYFLEET_ prefix is reserved for pyfleet; rename the variable",
    ),
    Case(
        "app-env-bool",
        "app values",
        app(0, env={"DEBUG": True}),
        "pyfleet_apps[0].env.DEBUG (app hello): expected a string or number, got a boolean; quote it",
    ),
    Case(
        "app-secret-in-env-too",
        "app values",
        app(0, env={"SECRET_KEY": "x"}),
        "pyfleet_apps[0].secrets (app hello): SECRET_KEY is set in both env and secrets; keep it in one of them",
    ),
    Case(
        "app-user-root",
        "app values",
        app(0, user="root"),
        "pyfleet_apps[0].user (app hello): 'root' is a system or service account; use a dedicated user, e.g. user: app_hello",
    ),
    Case(
        "app-base-dir-shallow",
        "app values",
        app(0, base_dir="/srv"),
        "pyfleet_apps[0].base_dir (app hello): '/srv' is not an absolute directory at least two levels deep; set e.g. base_dir: /srv/hello",
    ),
    Case(
        "app-sandbox-relax-unknown",
        "app values",
        app(0, sandbox_relax=[{"option": "MemoryDenyWrite", "reason": "cffi"}]),
        "pyfleet_apps[0].sandbox_relax[0].option (app hello): 'MemoryDenyWrite' is not a hardening option pyfleet sets; did you mean MemoryDenyWriteExecute? one of: {relaxable}",
    ),
    Case(
        "app-source-missing",
        "app values",
        app(0, source={"path": "examples/nope"}),
        "pyfleet_apps[0].source.path (app hello): {root}/examples/nope is not a directory; point it at the project directory that holds pyproject.toml",
        commands=WITH_PATHS,
    ),
    Case(
        "app-requirements-unpinned",
        "app values",
        requirements_file("flask>=3\ngunicorn==23.0.0\n"),
        "pyfleet_apps[0].requirements (app hello): line 1 of requirements.txt ('flask>=3') is not pinned with ==; pin it (flask==<version>) or regenerate the file with uv pip compile",
        commands=WITH_PATHS,
    ),
    # Domains.
    Case(
        "app-domain-invalid",
        "domains",
        app(0, domains=["hello_lab.test"]),
        "pyfleet_apps[0].domains[0] (app hello): 'hello_lab.test' is not a valid host name; write e.g. app.example.com",
    ),
    Case(
        "app-domain-twice",
        "domains",
        app(0, domains=["hello.lab.test", "Hello.lab.test"]),
        "pyfleet_apps[0].domains[1] (app hello): hello.lab.test is listed twice; remove one",
    ),
    Case(
        "app-domain-shared",
        "domains",
        app(1, domains=["hello.lab.test"]),
        "pyfleet_apps[1].domains (app hello-async): apps hello and hello-async both claim domain hello.lab.test; give each app its own domain",
    ),
    Case(
        "flower-domain-of-an-app",
        "domains",
        gvars("workers", celery_flower_domain="hello.lab.test"),
        "celery_flower_domain: hello.lab.test is also a domain of app hello; give flower a name of its own",
    ),
    Case(
        "flower-domain-invalid",
        "domains",
        gvars("workers", celery_flower_domain="Flower Lab"),
        "celery_flower_domain: 'Flower Lab' is not a lowercase DNS name; set celery_flower_domain: flower.example.com",
    ),
    # Ports.
    Case(
        "flower-port-out-of-range",
        "ports",
        gvars("workers", celery_flower_port=70000),
        "celery_flower_port on worker2: 70000 is not a TCP port; set celery_flower_port: 5555",
    ),
    # The Celery catalogue.
    Case(
        "catalogue-unknown-key",
        "celery catalogue",
        catalogue("default", concurency=2),
        "celery_worker_catalogue.default.concurency: unknown key; did you mean concurrency? allowed keys: acks_late, autoscale, concurrency, gossip, heartbeat, max_memory_per_child, max_tasks_per_child, mingle, pool, prefetch_multiplier, queues, reject_on_worker_lost, soft_time_limit, time_limit, track_started",
    ),
    Case(
        "catalogue-bad-pool",
        "celery catalogue",
        catalogue("io", pool="thread"),
        "celery_worker_catalogue.io.pool: 'thread' is not one of prefork, threads, solo, gevent, eventlet; set pool: prefork",
    ),
    Case(
        "catalogue-soft-above-hard",
        "celery catalogue",
        catalogue("cpu", soft_time_limit=90),
        "celery_worker_catalogue.cpu.soft_time_limit: 90 is not below time_limit 60; set soft_time_limit below time_limit (e.g. 54)",
    ),
    Case(
        "catalogue-queue-twice",
        "celery catalogue",
        catalogue("io", queues=["default"]),
        "celery_worker_catalogue.io.queues: queue default is already consumed by type default; give each type its own queues",
    ),
    Case(
        "catalogue-bad-type-name",
        "celery catalogue",
        gvars("workers", celery_worker_catalogue={"Default": {"queues": ["default"]}}),
        "celery_worker_catalogue: 'Default' is not a valid worker type name (a lowercase letter, then up to 30 of a-z 0-9 _ -); rename it, e.g. io",
    ),
    Case(
        "catalogue-autoscale-threads",
        "celery catalogue",
        catalogue("io", autoscale=[8, 2], concurrency=DELETE),
        "celery_worker_catalogue.io.autoscale: only the prefork pool autoscales, not threads; use concurrency",
    ),
    Case(
        "default-type-unknown",
        "celery catalogue",
        gvars("workers", celery_task_default_type="defualt"),
        "celery_task_default_type: unknown worker type 'defualt' (unrouted tasks go there); set it to one of cpu, default, io",
    ),
    # Placement of worker types on hosts.
    Case(
        "placement-unknown-type",
        "celery placement",
        hvars("worker1", celery_worker_types=["default", "gpu"]),
        "celery_worker_types on worker1: unknown worker type 'gpu'; did you mean cpu? use one of cpu, default, io or add gpu to celery_worker_catalogue",
    ),
    Case(
        "placement-type-twice",
        "celery placement",
        hvars("worker1", celery_worker_types=["default", "io", "io"]),
        "celery_worker_types on worker1: io is listed twice (duplicate node io@worker1); remove one",
    ),
    Case(
        "placement-host-not-worker",
        "celery placement",
        hvars("web1", celery_worker_types=["io"]),
        "celery_worker_types on web1: web1 is not in group workers, so nothing starts its workers; add web1 to group workers or remove celery_worker_types",
    ),
    Case(
        "placement-worker-without-type",
        "celery placement",
        both(group("workers", ["worker1", "worker2", "worker3"]), hvars("worker3", ansible_host="127.0.0.15")),
        "celery_worker_types on worker3: worker3 is in group workers but runs no worker type; set celery_worker_types: [cpu] or remove it from workers",
    ),
    Case(
        "placement-type-without-host",
        "celery placement",
        hvars("worker2", celery_worker_types=["default"]),
        "celery_worker_catalogue.cpu: no host runs this type, so its queues have no consumer; add cpu to celery_worker_types of a host in group workers or remove it from celery_worker_catalogue",
    ),
    # Beat and Flower.
    Case(
        "beat-none",
        "celery beat",
        hvars("worker2", celery_beat=DELETE),
        "celery_beat: no host runs beat (exactly one must); set celery_beat: true in the host_vars of one host of group workers",
    ),
    Case(
        "beat-twice",
        "celery beat",
        hvars("worker1", celery_beat=True),
        "celery_beat: worker1 and worker2 both run beat, so periodic tasks would run twice; keep celery_beat: true on one host only",
    ),
    Case(
        "beat-not-a-bool",
        "celery beat",
        hvars("worker2", celery_beat="yes please"),
        "celery_beat on worker2: 'yes please' is not true or false; write true or false",
    ),
    Case(
        "beat-schedule-every-and-cron",
        "celery beat",
        gvars(
            "workers", celery_beat_schedule={"tick": {"task": "sampleapp.tasks.tick", "every": 10, "cron": "* * * * *"}}
        ),
        "celery_beat_schedule.tick: set exactly one of every (seconds) or cron ('*/5 * * * *')",
    ),
    Case(
        "beat-schedule-bad-cron",
        "celery beat",
        gvars("workers", celery_beat_schedule={"tick": {"task": "sampleapp.tasks.tick", "cron": "every minute"}}),
        "celery_beat_schedule.tick.cron: 'every minute' is not five cron fields; write cron: '*/5 * * * *'",
    ),
    Case(
        "flower-twice",
        "celery flower",
        hvars("worker1", celery_flower=True),
        "celery_flower: worker1 and worker2 both run flower; keep celery_flower: true on one host only",
    ),
    Case(
        "flower-no-users",
        "celery flower",
        gvars("workers", celery_flower_users=DELETE),
        "celery_flower_users: not set but worker2 runs flower, so nobody could log in; set celery_flower_users: [{name: ops, password: '{{ vault_flower_password }}'}] (ansible-vault)",
    ),
    Case(
        "flower-password-too-long",
        "celery flower",
        gvars("workers", celery_flower_users=[{"name": "ops", "password": "x" * 80}]),
        "celery_flower_users[0].password (user ops): longer than 72 bytes; use a shorter password",
    ),
    Case(
        "flower-without-loadbalancers",
        "celery flower",
        group("loadbalancers", None),
        "celery_flower on worker2: group loadbalancers has no host, and flower is only reached through the load balancers; add a host to group loadbalancers or remove celery_flower",
    ),
    # Task routes.
    Case(
        "routes-unknown-type",
        "celery routes",
        gvars("workers", celery_task_routes={"sampleapp.tasks.sleep": "i0"}),
        "celery_task_routes['sampleapp.tasks.sleep']: unknown worker type 'i0'; route to one of cpu, default, io",
    ),
    Case(
        "routes-queue-nobody-consumes",
        "celery routes",
        gvars("workers", celery_task_routes={"sampleapp.tasks.sleep": {"queue": "slow"}}),
        "celery_task_routes['sampleapp.tasks.sleep']: no worker type consumes queue 'slow', so its tasks would wait forever; route to a type (cpu, default, io) or a queue of one",
    ),
    Case(
        "routes-bad-pattern",
        "celery routes",
        gvars("workers", celery_task_routes={"sample app.tasks": "io"}),
        "celery_task_routes['sample app.tasks']: not a task name or glob; write e.g. 'myapp.tasks.*'",
    ),
    # The Celery app and the hosts it is deployed on.
    Case(
        "celery-two-apps",
        "celery app",
        app(1, celery={"app": "sampleapp.tasks:app", "hosts": "workers"}),
        "pyfleet_apps: apps hello, hello-async all have celery, but pyfleet runs the workers of one app; keep celery on one app",
    ),
    Case(
        "celery-no-app",
        "celery app",
        app(0, celery=DELETE),
        "pyfleet_apps: no app has celery: {app: module:attribute}, so workers have nothing to run; add celery: {app: 'myapp.tasks:app', hosts: workers} to the app with the tasks",
    ),
    Case(
        "celery-hosts-miss-workers",
        "celery app",
        app(0, celery={"app": "sampleapp.tasks:app", "hosts": "worker1"}),
        "pyfleet_apps[0].celery.hosts (app hello): worker2 runs celery workers but the app is not deployed there (hosts: web, celery.hosts: worker1); set celery: {app: 'sampleapp.tasks:app', hosts: workers}",
    ),
    # The broker.
    Case(
        "broker-none",
        "broker",
        group("brokers", None),
        "group brokers: no broker host; add a host to group brokers in the inventory (it runs redis)",
    ),
    Case(
        "broker-two",
        "broker",
        both(group("brokers", ["broker1", "broker2"]), hvars("broker2", ansible_host="127.0.0.14")),
        "group brokers: 2 hosts (broker1, broker2) but pyfleet runs one broker; keep one host in group brokers",
    ),
    # --limit patterns.
    Case(
        "limit-matches-nothing",
        "host patterns",
        None,
        "--limit webx: matches no host of inventory {inv}; use hosts (lb1, web1, web2, broker1, worker1, worker2) or groups (brokers, loadbalancers, web, workers)",
        commands=("check --limit webx", "site --check --limit webx"),
    ),
    # Checked by the one fleet plan (with hostvars) since main 0ecc152; before, only
    # site.yml's first play did, after fab check/deploy had gone to the hosts.
    Case(
        "broker-kind-typo",
        "broker",
        gvars("broker", pyfleet_broker_kind="redsi"),
        "pyfleet_broker_kind: 'redsi' is not one of redis, rabbitmq; did you mean redis? set pyfleet_broker_kind: redis (the default) or rabbitmq",
    ),
    Case(
        "broker-redis-no-password",
        "broker",
        gvars("broker", redis_password=DELETE),
        "redis_password: not set for broker broker1; set it from ansible-vault (redis_password: ...)",
    ),
    Case(
        "broker-rabbitmq-no-password",
        "broker",
        gvars("broker", pyfleet_broker_kind="rabbitmq"),
        "rabbitmq_passwords.hello: not set for broker broker1 (the password of RabbitMQ user hello); set rabbitmq_passwords: {hello: ...} from ansible-vault",
    ),
    Case(
        "broker-port-not-a-port",
        "ports",
        hvars("broker1", redis_port="sixty"),
        "redis_port on broker1: 'sixty' is not a TCP port; set redis_port: 6379",
    ),
    Case(
        "address-not-an-ip",
        "addresses",
        hvars("broker1", pyfleet_private_address="broker1.internal"),
        "pyfleet_private_address on broker1: 'broker1.internal' is not an IP address, and worker units may only reach the broker by IP; set pyfleet_private_address of broker1 to its private IP",
        commands=WITH_ADDRESSES,
    ),
    Case(
        "app-hosts-unknown-group",
        "host patterns",
        app(1, hosts="webservers"),
        "pyfleet_apps[1].hosts (app hello-async): 'webservers' matches no inventory host; add hosts to that group or set hosts to a group that has some",
    ),
    Case(
        "web-group-empty",
        "groups",
        group("web", []),
        "pyfleet_apps[0].hosts (app hello): 'web' matches no inventory host; add hosts to that group or set hosts to a group that has some",
    ),
    # Checked by the plan on the controller (before any host, before a deploy's lock).
    # An inventory without load balancers stays valid: a web tier behind a balancer of
    # its own (molecule's web scenario is one).
    Case(
        "address-public",
        "addresses",
        hvars("web2", pyfleet_private_address="8.8.8.8"),
        "pyfleet_private_address on web2: '8.8.8.8' is a public address, and pyfleet's hosts reach each other on their private network; set pyfleet_private_address of web2 to its private IP",
        commands=WITH_ADDRESSES,
    ),
    Case(
        "entry-not-in-source",
        "app entries",
        app(0, entry="sampleapp.nowhere:app"),
        "pyfleet_apps[0].entry (app hello): module sampleapp.nowhere is not in the app's source (no sampleapp/nowhere.py or sampleapp/nowhere/__init__.py); fix entry to name a module of the app",
        commands=WITH_PATHS,
    ),
    # The load balancers' TLS settings (pyfleet/acme.py), checked by the plan too.
    Case(
        "acme-without-directory",
        "tls",
        gvars("loadbalancer", loadbalancer_tls_mode="acme", loadbalancer_acme_terms_agreed=True),
        "loadbalancer_acme_directory (host lb1): not set, and loadbalancer_tls_mode is acme; set it to your ACME CA's directory URL (https://..., the CA documents it)",
    ),
    Case(
        "acme-terms-not-agreed",
        "tls",
        gvars("loadbalancer", loadbalancer_tls_mode="acme", loadbalancer_acme_directory="https://acme.test/directory"),
        "loadbalancer_acme_terms_agreed (host lb1): the CA's terms of service are not agreed to; read them and set loadbalancer_acme_terms_agreed: true",
    ),
    # Any variable a role declares (roles/*/meta/argument_specs.yml), checked by the plan with
    # Ansible's validator: before, the role's own check stopped the run at the role, after the
    # plays before it had changed the hosts.
    Case(
        "role-variable-wrong-type",
        "role variables",
        gvars("common", common_journald_persistent="sometimes"),
        "common_journald_persistent on lb1: 'sometimes' is not true or false; set common_journald_persistent to true or false (roles/common/meta/argument_specs.yml)",
    ),
    Case(
        "role-variable-not-a-choice",
        "role variables",
        hvars("broker1", redis_appendfsync="often"),
        "redis_appendfsync on broker1: 'often' is not one of always, everysec, no; set redis_appendfsync to one of always, everysec, no (roles/redis/meta/argument_specs.yml)",
    ),
]
