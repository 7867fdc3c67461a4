"""Ansible filters of the load balancer's ACME mode (pyfleet/acme.py): pyfleet_acme_problem,
pyfleet_acme_domains, pyfleet_acme_renewal, pyfleet_acme_challenge_files, pyfleet_acme_failure."""

from pyfleet import acme
from pyfleet.errors import PyfleetError

DOCUMENTATION = r"""
name: pyfleet_acme_renewal
short_description: What the load balancer's ACME mode decides, from Python with unit tests
version_added: "0.3.0"
author: pyfleet
description:
  - C(inventory_hostname | pyfleet_acme_problem(settings)) the first mistake in the host's
    TLS settings (a mapping of the loadbalancer_tls_mode and loadbalancer_acme_* variables)
    as one line, empty when there is none.
  - C(upstreams | pyfleet_acme_domains(flower)) every name the certificate carries.
  - C(certificate_info | pyfleet_acme_renewal(domains, directory, issued_by, renew_days, force))
    C({order, reason}) whether to order a certificate now, and why.
  - C(challenge_data | pyfleet_acme_challenge_files(hosts)) the HTTP-01 answers to write on each load balancer.
  - C(ansible_failed_result | pyfleet_acme_failure(host, domains, directory)) the one line a failed order ends with.
options:
  _input:
    description: The host name, the upstreams, the certificate info, the challenge data or the failed result.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Decide whether to order a certificate
  ansible.builtin.set_fact:
    decision: "{{ info | pyfleet_acme_renewal(['a.example'], 'https://ca.example/dir', '', 30, false) }}"
"""

RETURN = r"""
_value:
  description: One line, a list of names, a decision mapping or a list of files.
  type: raw
"""


def problem(host, settings):
    """The first mistake in ``settings`` as one line, or ''."""
    try:
        acme.check_settings(host, settings or {})
    except PyfleetError as exc:
        return str(exc)
    return ""


class FilterModule:
    """Filters over pyfleet.acme."""

    def filters(self):
        """Filter name -> function."""
        return {
            "pyfleet_acme_problem": problem,
            "pyfleet_acme_domains": acme.domains,
            "pyfleet_acme_renewal": acme.renewal,
            "pyfleet_acme_challenge_files": acme.challenge_files,
            "pyfleet_acme_failure": lambda result, host, names, directory: acme.failure_line(
                host, result, names, directory
            ),
        }
