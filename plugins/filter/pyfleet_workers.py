"""Ansible filters of the Celery tier: pyfleet_broker_url, pyfleet_result_backend, pyfleet_celery_config.

The Celery plan itself is part of the fleet plan (filter pyfleet_plan, playbooks/plan.yml).
"""

from ansible.errors import AnsibleFilterError

from pyfleet.broker import broker_url, result_backend
from pyfleet.celeryconfig import render_config_module
from pyfleet.errors import PyfleetError

DOCUMENTATION = r"""
name: pyfleet_broker_url
short_description: The Celery clients' broker URL, result backend and settings module
version_added: "0.1.0"
author: pyfleet
description:
  - C(pyfleet_broker_url(brokers, hostvars, password, db=0, kind=redis, app=None)) gives the
    URL of the one broker host after C(pyfleet_broker_kind) - C(redis://:<password>@<ip>:6379/<db>)
    with C(redis_password), or C(amqp://<app>:<password>@<ip>:5672/<app>) with the app's entry in
    C(rabbitmq_passwords) (passwords percent-encoded; use no_log).
  - C(pyfleet_result_backend(brokers, hostvars, password, kind=redis, app=None)) the default
    result backend (redis database 1, or C(rpc://) with rabbitmq).
  - C(pyfleet_celery_config(celery_plan)) the source of the generated settings module, from
    the Celery plan (C(pyfleet_plan.celery)).
options:
  _input:
    description: The broker host, as a list of one host name.
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: dict
    required: true
  password:
    description: C(redis_password), or the app's entry in C(rabbitmq_passwords).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The broker URL of the Celery app
  ansible.builtin.set_fact:
    broker: >-
      {{ [pyfleet_plan.celery.broker_host] | pyfleet_broker_url(hostvars, redis_password,
         kind=pyfleet_plan.broker_kind, app=pyfleet_plan.celery.app.name) }}
  no_log: true
"""

RETURN = r"""
_value:
  description: The URL.
  type: str
"""


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
            f"pyfleet_celery_config: expected the Celery plan, pyfleet_plan.celery ({exc})"
        ) from None


class FilterModule:
    """pyfleet's Celery tier filters."""

    def filters(self):
        """Filter name -> function."""
        return {
            "pyfleet_broker_url": pyfleet_broker_url,
            "pyfleet_result_backend": pyfleet_result_backend,
            "pyfleet_celery_config": pyfleet_celery_config,
        }
