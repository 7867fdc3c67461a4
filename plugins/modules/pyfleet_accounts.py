#!/usr/bin/python
"""Documentation of the pyfleet_accounts action (plugins/action/pyfleet_accounts.py does the work)."""

DOCUMENTATION = r"""
module: pyfleet_accounts
short_description: Groups and users - one getent call when they already are as asked, the group and user modules otherwise
version_added: "0.1.0"
author: pyfleet
description:
  - A loop over C(ansible.builtin.group) and C(ansible.builtin.user) costs a module run
    per item and host on every converge (and the user module runs C(usermod --help)
    twice in each). This action reads every account it names with one
    C(getent group ...; getent passwd ...) and runs C(ansible.builtin.group) or
    C(ansible.builtin.user), with that entry's own arguments, only for an entry that
    differs or that asks for something the check does not read. Groups run before users.
  - "What the check reads: a group exists; a user exists, has the primary O(users[].group),
    O(users[].home) and O(users[].shell) asked, and with O(users[].append) true is a
    member of every group in O(users[].groups). C(system) and C(create_home) only
    matter when the module creates the account (as with the modules themselves)."
  - Runs on the controller as an action plugin; the module file holds only this documentation.
options:
  groups:
    description: Arguments of C(ansible.builtin.group), one entry per group.
    type: list
    elements: dict
    default: []
  users:
    description: Arguments of C(ansible.builtin.user), one entry per user.
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: An app's system group and user, and nginx in that group
  pyfleet_accounts:
    groups:
      - {name: hello, system: true}
    users:
      - {name: hello, group: hello, system: true, shell: /usr/sbin/nologin, home: /srv/hello, create_home: false}
      - {name: www-data, groups: [hello], append: true}
"""

RETURN = r"""
checked_only:
  description: True when every account was as asked and no module ran.
  type: bool
  returned: always
results:
  description: The group and user modules' results, for the entries that ran, in order.
  type: list
  elements: dict
  returned: always
"""
