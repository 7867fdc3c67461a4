"""Ansible filter pyfleet_app_accounts: the app groups and users of a host, as the accounts action takes them."""

from ansible.errors import AnsibleFilterError

from pyfleet.apps import accounts

DOCUMENTATION = r"""
name: pyfleet_app_accounts
short_description: The system groups and users a host's apps need
version_added: "0.1.0"
author: pyfleet
description:
  - For a host's normalised apps - a system group and a system user per app (no
    login, its base_dir as home, none created), and the nginx user in the groups of
    the apps it serves (those without C(web=false)), appended to the groups it has.
  - Returns C(groups) and C(users) as C(ansible.builtin.group) and C(ansible.builtin.user)
    arguments, the form C(pyfleet_accounts) takes.
options:
  _input:
    description: The host's normalised apps (C(pyfleet_plan.hosts[host].apps)).
    type: list
    elements: dict
    required: true
  nginx_user:
    description: The user nginx runs as; an empty string where no nginx runs.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Create the app groups and users
  pyfleet_accounts:
    groups: "{{ (app_apps | pyfleet_app_accounts('www-data')).groups }}"
    users: "{{ (app_apps | pyfleet_app_accounts('www-data')).users }}"
"""

RETURN = r"""
_value:
  description: "{groups: [group module arguments], users: [user module arguments]}."
  type: dict
"""


def pyfleet_app_accounts(apps, nginx_user):
    """The accounts of a host's normalised ``apps``; see DOCUMENTATION."""
    try:
        return accounts(apps, nginx_user)
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"pyfleet_app_accounts: expected normalised apps ({exc!r} missing or wrong)") from None


class FilterModule:
    """pyfleet's app account filter."""

    def filters(self):
        """Filter name -> function."""
        return {"pyfleet_app_accounts": pyfleet_app_accounts}
