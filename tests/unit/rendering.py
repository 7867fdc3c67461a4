"""Render a role's template as Ansible's template module does, with the real filters.

The template goes through Ansible's own Templar (the same Jinja2 environment,
``trim_blocks``, the ansible.builtin filters and pyfleet's from plugins/filter), with
the role's ``defaults/main.yml`` and ``vars/main.yml`` loaded as Ansible loads
them (their own templates resolve lazily, e.g. ``app_server_apps`` from
``pyfleet_plan``) and the plan of a small fleet built by ``pyfleet.plan.build``.
"""

import re
from pathlib import Path

from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import filter_loader, init_plugin_loader
from ansible.template import Templar, trust_as_template

from pyfleet import plan as plan_mod

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "apps"

init_plugin_loader()  # the collection loader, as the ansible commands set it up (lookups need it)
filter_loader.add_directory(str(ROOT / "plugins" / "filter"))

GROUPS = {
    "all": ["lb1", "web1", "web2", "broker1", "worker1", "worker2"],
    "loadbalancers": ["lb1"],
    "web": ["web1", "web2"],
    "brokers": ["broker1"],
    "workers": ["worker1", "worker2"],
}
SHOP = {
    "name": "shop",
    "source": {"path": "proj"},
    "kind": "wsgi",
    "entry": "proj.wsgi:app",
    "domains": ["s.test", "www.s.test"],
    "celery": {"app": "proj.tasks:app", "hosts": "workers"},
}
API = {"name": "api", "source": {"path": "proj"}, "kind": "asgi", "entry": "proj.asgi:app", "domains": ["api.test"]}


def fleet_hostvars(broker="redis"):
    """Host variables of a six-host fleet: two apps (WSGI with Celery, ASGI), beat, flower."""
    hv = {
        "lb1": {"ansible_host": "10.0.0.1"},
        "web1": {"ansible_host": "10.0.0.11"},
        "web2": {"ansible_host": "10.0.0.12"},
        "broker1": {"ansible_host": "10.0.0.5", "redis_password": "s3cret-for-tests"},
        "worker1": {"ansible_host": "10.0.0.31", "celery_worker_types": ["default", "io"], "celery_beat": True},
        "worker2": {
            "ansible_host": "10.0.0.32",
            "celery_worker_types": ["default"],
            "celery_flower": True,
            "celery_flower_domain": "flower.s.test",
            "celery_flower_users": [{"name": "ops", "password": "a-long-flower-password"}],
        },
    }
    if broker == "rabbitmq":
        hv["broker1"].update(pyfleet_broker="rabbitmq", rabbitmq_passwords={"shop": "r4bbit-for-tests"})
    hv["lb1"].update(
        pyfleet_apps=[SHOP, API],
        celery_worker_catalogue={
            "default": {"queues": ["default"], "time_limit": 300},
            "io": {"queues": ["io"], "pool": "threads", "concurrency": 8, "time_limit": 600},
        },
        celery_task_routes={"proj.tasks.fetch": "io"},
        celery_beat_schedule={"tick": {"task": "proj.tasks.tick", "every": 10}},
    )
    return hv


def fleet_plan(broker="redis"):
    return plan_mod.build(fleet_hostvars(broker), GROUPS, project_dir=str(FIXTURES))


def role_vars(role):
    """The role's defaults and vars, as Ansible loads them (templates kept for later)."""
    loader = DataLoader()
    merged = {}
    for part in ("defaults", "vars"):
        path = ROOT / "roles" / role / part / "main.yml"
        if path.exists():
            merged.update(loader.load_from_file(str(path), trusted_as_template=True) or {})
    return merged


def role_value(role, name, **variables):
    """The role variable ``name`` as Ansible resolves it from the role's defaults and vars (``variables`` win)."""
    templar = Templar(loader=DataLoader(), variables={**role_vars(role), **variables})
    return templar.template(trust_as_template("{{ " + name + " }}"))


def render(role, template, host, pyfleet_plan=None, **variables):
    """The text ``roles/<role>/templates/<template>`` renders to on ``host`` (extra ``variables`` win)."""
    pyfleet_plan = pyfleet_plan or fleet_plan()
    hostvars = fleet_hostvars()
    source = ROOT / "roles" / role / "templates" / template
    values = {
        **role_vars(role),
        **hostvars[host],
        "inventory_hostname": host,
        "hostvars": hostvars,
        "groups": GROUPS,
        "pyfleet_plan": pyfleet_plan,
        "ansible_managed": "Ansible managed",
        "ansible_processor_vcpus": 2,
        **variables,
    }
    loader = DataLoader()
    templar = Templar(loader=loader, variables=values)
    templar = templar.copy_with_new_env(searchpath=[str(source.parent)], available_variables=values)
    text = templar.template(
        trust_as_template(source.read_text(encoding="utf-8")),
        escape_backslashes=False,
        overrides={"trim_blocks": True, "lstrip_blocks": False},
    )
    return text or ""


def directives(text):
    """The ``Key=value`` lines of a systemd unit (continuations joined), in order: [(key, value)]."""
    out = []
    joined = text.replace("\\\n", " ")
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out.append((key, value))
    return out


def unit_values(text, key):
    """Every value of ``key`` in a unit, in order."""
    return [v for k, v in directives(text) if k == key]


def _nginx_tokens(text):
    for line in text.splitlines():
        for match in re.finditer(r'"(?:[^"\\]|\\.)*"|[{};]|[^\s{};"#]+|#.*', line):
            token = match.group(0)
            if not token.startswith("#"):
                yield token


def nginx(text):
    """An nginx config as a tree: [(words, children or None)] (a directive's words keep their quotes)."""
    stack = [[]]
    words = []
    for token in _nginx_tokens(text):
        if token == ";":
            stack[-1].append((words, None))
            words = []
        elif token == "{":
            node = (words, [])
            stack[-1].append(node)
            stack.append(node[1])
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        else:
            words.append(token)
    assert len(stack) == 1 and not words, "unbalanced braces"
    return stack[0]


def find(tree, *names):
    """The nodes of ``tree`` whose first word is ``names[0]`` (then their children's ``names[1]``, ...)."""
    nodes = [n for n in tree if n[0] and n[0][0] == names[0]]
    if len(names) == 1:
        return nodes
    return [m for n in nodes for m in find(n[1] or [], *names[1:])]


def values(block, name):
    """The arguments of every ``name`` directive directly in ``block``, joined by spaces."""
    return [" ".join(words[1:]) for words, children in block if words and words[0] == name and children is None]
