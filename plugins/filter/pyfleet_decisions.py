"""Ansible filters for what the roles decide: pyfleet_exec_start, pyfleet_units_to_restart,
pyfleet_celery_units_to_switch, pyfleet_rabbitmq_problem, pyfleet_failure_line (pyfleet/decisions.py), pyfleet_ssh_lockout
(pyfleet/firewall.py)."""

from pyfleet import decisions, firewall

DOCUMENTATION = r"""
name: pyfleet_exec_start
short_description: What the roles decide, from Python with unit tests
version_added: "0.2.0"
author: pyfleet
description:
  - C(app | pyfleet_exec_start(workers=, graceful_timeout=, keepalive_timeout=, request_timeout=, extra_args=))
    gives the app unit's command line (gunicorn or uvicorn), one entry per unit file line.
  - C(units | pyfleet_units_to_restart(everything, changed_types, started)) the Celery
    worker units a converge restarts.
  - C(celery_plan | pyfleet_celery_units_to_switch(host, types=, beat_flower=, installed=)) the
    Celery units one C(systemctl restart) call restarts on the host (its worker units of the
    types, beat and Flower where they run there), only those whose unit file is installed.
  - C(inventory_hostname | pyfleet_rabbitmq_problem(bind_addresses, apps, passwords,
    consumer_timeout, longest_time_limit)) the first mistake in the rabbitmq role's
    inputs as one line, empty when there is none.
  - C(ansible_failed_result | pyfleet_failure_line(inventory_hostname)) the one line a
    failed deploy step ends with.
options:
  _input:
    description: The app, the units, the host name or the failed result (see above).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Show the command line of each app on the host
  ansible.builtin.debug:
    msg: "{{ item | pyfleet_exec_start(workers=4, graceful_timeout=30, keepalive_timeout=75, request_timeout=60) }}"
  loop: "{{ pyfleet_plan.hosts[inventory_hostname].apps }}"
"""

RETURN = r"""
_value:
  description: A list of lines, a list of unit names or one line.
  type: raw
"""


class FilterModule:
    """Filters over pyfleet.decisions."""

    def filters(self):
        """Filter name -> function."""
        return {
            "pyfleet_exec_start": decisions.exec_start,
            "pyfleet_units_to_restart": decisions.units_to_restart,
            "pyfleet_celery_units_to_switch": decisions.celery_units_to_switch,
            "pyfleet_rabbitmq_problem": decisions.rabbitmq_problem,
            "pyfleet_failure_line": lambda result, host: decisions.failure_line(host, result),
            "pyfleet_ssh_lockout": firewall.ssh_lockout,
        }
