"""Ansible filters of the Celery tier: pyfleet_workers, pyfleet_broker_url, pyfleet_result_backend,
pyfleet_celery_config."""

import os
import sys

from ansible.errors import AnsibleFilterError

try:
    from pyfleet.apps import normalize_apps
    from pyfleet.errors import PyfleetError
    from pyfleet.workers import (
        FLOWER,
        FLOWER_KEYS,
        HOST_KEYS,
        broker_url,
        plan_workers,
        render_config_module,
        result_backend,
    )
except ImportError:
    # Ansible loads this file by path: make the repo root (two directories up) importable.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from pyfleet.apps import normalize_apps
    from pyfleet.errors import PyfleetError
    from pyfleet.workers import (
        FLOWER,
        FLOWER_KEYS,
        HOST_KEYS,
        broker_url,
        plan_workers,
        render_config_module,
        result_backend,
    )

DOCUMENTATION = r"""
name: pyfleet_workers
short_description: Place Celery worker types on hosts and generate task routes, checked first
version_added: "0.1.0"
author: pyfleet
description:
  - Takes C(celery_worker_catalogue) (worker type -> queues, pool, concurrency or
    autoscale, prefetch, time limits, per-child limits, late acks) and the hosts'
    C(celery_worker_types), C(celery_beat) and C(celery_flower), and returns the
    plan the celery_worker and celery_beat roles render - per host one unit spec per
    type (node C(<type>@<host>), queues, command-line options, stop timeout), the
    producers' C(task_routes), the beat schedule and the broker visibility timeout.
  - The first mistake fails with one line naming the variable or host and the fix -
    an unknown type, a type no host runs, a route to a type or queue nobody consumes,
    zero or two beats, two flowers, no broker, a Celery host the app is not deployed
    on, a type listed twice on a host, numbers out of range, unknown keys, a flower
    host without C(celery_flower_domain) or C(celery_flower_users).
  - Companion filters - C(pyfleet_broker_url(brokers, hostvars, password, db=0, kind=redis, app=None))
    gives the URL of the one broker host after C(pyfleet_broker_kind) - C(redis://:<password>@<ip>:6379/<db>)
    with C(redis_password), or C(amqp://<app>:<password>@<ip>:5672/<app>) with the app's entry in
    C(rabbitmq_passwords) (passwords percent-encoded; use no_log);
    C(pyfleet_result_backend(brokers, hostvars, password, kind=redis, app=None)) the default
    result backend (redis database 1, or C(rpc://) with rabbitmq); and
    C(pyfleet_celery_config(plan)) the source of the generated settings module.
options:
  _input:
    description: The value of C(celery_worker_catalogue).
    type: dict
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: dict
    required: true
  groups:
    description: The C(groups) magic variable.
    type: dict
    required: true
  apps:
    description: The value of C(pyfleet_apps) (not normalised).
    type: list
    elements: dict
    required: true
  routes:
    description: C(celery_task_routes), task name or glob -> worker type (or a mapping with key C(queue)).
    type: dict
  schedule:
    description: C(celery_beat_schedule), name -> C({task, every | cron, args, kwargs}).
    type: dict
  default_type:
    description: The worker type whose first queue gets unrouted tasks.
    type: str
    default: default
  worker_group:
    description: The inventory group of worker hosts.
    type: str
    default: workers
  broker_group:
    description: The inventory group of the broker host.
    type: str
    default: brokers
  loadbalancer_group:
    description: The inventory group of the load balancers, which reach Flower.
    type: str
    default: loadbalancers
"""

EXAMPLES = r"""
- name: Plan the Celery tier once
  ansible.builtin.set_fact:
    celery_plan: >-
      {{ celery_worker_catalogue | pyfleet_workers(hostvars, groups, pyfleet_apps,
         routes=celery_task_routes, schedule=celery_beat_schedule) }}
  run_once: true

- name: Units of this host
  ansible.builtin.debug:
    msg: "{{ celery_plan.hosts[inventory_hostname] | map(attribute='unit') }}"
"""

RETURN = r"""
_value:
  description: The plan; C(enabled) is false when the inventory uses no Celery.
  type: dict
  contains:
    app:
      description: >-
        The Celery app - name, celery_app, user, group, current_link, celery_dir, beat_dir,
        worker_unit, beat_unit.
      type: dict
    types:
      description: The normalised catalogue, with each type's stop_timeout.
      type: dict
    hosts:
      description: >-
        Host of group workers -> list of units (type, node, unit, queues, pool, args, time_limit,
        stop_timeout).
      type: dict
    beat_host:
      description: The one host that runs beat.
      type: str
    flower_host:
      description: The host that runs flower, or null.
      type: str
    flower:
      description:
        - Null without a flower host, else host, domain, port, users (names only), address
          (where Flower listens), endpoint (what the load balancers proxy to) and allow (the
          IPs the Flower unit may talk to besides localhost - the broker and the load balancers).
      type: dict
    broker_host:
      description: The broker host.
      type: str
    broker_kind:
      description: C(pyfleet_broker_kind) of the broker host (redis or rabbitmq; redis without hostvars).
      type: str
    broker_ip:
      description: The broker host's private IP address (the worker units may reach it only).
      type: str
    default_queue:
      description: Where unrouted tasks go.
      type: str
    task_routes:
      description: Celery task_routes, pattern -> {queue}.
      type: dict
    beat_schedule:
      description: The checked beat schedule.
      type: dict
    visibility_timeout:
      description: Redis visibility timeout in seconds (the longest time limit plus 30).
      type: int
    consumer_timeout:
      description: RabbitMQ consumer_timeout in seconds (twice the longest time limit, at least 3600).
      type: int
"""


def _host_settings(hostvars, groups):
    """Only the Celery variables of every host (reading all of hostvars templates everything)."""
    result = {}
    for host in (groups or {}).get("all") or []:
        # Not hostvars.get(host, {}): Ansible's HostVars answers a missing host with Undefined, not KeyError.
        hv = hostvars[host] if host in hostvars else {}  # noqa: SIM401 - see the line above
        keys = HOST_KEYS + FLOWER_KEYS if hv.get(FLOWER) else HOST_KEYS
        result[host] = {key: hv.get(key) for key in keys if hv.get(key) is not None}
    return result


def pyfleet_workers(
    catalogue,
    hostvars,
    groups,
    apps,
    routes=None,
    schedule=None,
    default_type="default",
    worker_group="workers",
    broker_group="brokers",
    loadbalancer_group="loadbalancers",
):
    """Validate the Celery inventory and plan the units; see DOCUMENTATION."""
    try:
        normalised = normalize_apps(apps, check_paths=False)
        return plan_workers(
            catalogue,
            _host_settings(hostvars, groups),
            groups,
            normalised,
            routes=routes,
            schedule=schedule,
            default_type=default_type,
            worker_group=worker_group,
            broker_group=broker_group,
            hostvars=hostvars,
            loadbalancer_group=loadbalancer_group,
        )
    except PyfleetError as exc:
        raise AnsibleFilterError(str(exc)) from None


def pyfleet_broker_url(brokers, hostvars, password, db=0, kind="redis", app=None):
    """The broker URL of the one host in ``brokers``; see DOCUMENTATION."""
    try:
        return broker_url(brokers, hostvars, password, db=int(db), kind=kind, app=app)
    except PyfleetError as exc:
        raise AnsibleFilterError(str(exc)) from None


def pyfleet_result_backend(brokers, hostvars, password, kind="redis", app=None):
    """The default result backend of the broker kind; see DOCUMENTATION."""
    try:
        return result_backend(brokers, hostvars, password, kind=kind, app=app)
    except PyfleetError as exc:
        raise AnsibleFilterError(str(exc)) from None


def pyfleet_celery_config(plan):
    """The generated Celery settings module's source; see DOCUMENTATION."""
    try:
        return render_config_module(plan)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError(
            f"pyfleet_celery_config: expected the output of pyfleet_workers ({exc})"
        ) from None


class FilterModule:
    """pyfleet's Celery tier filters."""

    def filters(self):
        """Filter name -> function."""
        return {
            "pyfleet_workers": pyfleet_workers,
            "pyfleet_broker_url": pyfleet_broker_url,
            "pyfleet_result_backend": pyfleet_result_backend,
            "pyfleet_celery_config": pyfleet_celery_config,
        }
