"""Ansible filter pyfleet_htpasswd: an nginx basic-auth password file, bcrypt-hashed."""

import base64
import hashlib
import re

from ansible.errors import AnsibleFilterError

try:
    import bcrypt
except ImportError:  # paramiko (fabric) brings it to the controller
    bcrypt = None

DOCUMENTATION = r"""
name: pyfleet_htpasswd
short_description: The lines of an nginx auth_basic_user_file, passwords hashed with bcrypt
version_added: "0.1.0"
author: pyfleet
description:
  - Takes C([{name, password}]) and returns one C(name:$2b$...) line per user, for
    nginx's C(auth_basic_user_file) (glibc's crypt on Debian checks bcrypt).
  - The salt is derived from O(realm) and the user name, so the same password gives
    the same line on every run (a second converge changes nothing) and a new password
    a new line. Use it with no_log, since the input holds the passwords.
  - A bad entry fails with one line naming its index (never the password).
options:
  _input:
    description: The users, each a mapping with C(name) and C(password).
    type: list
    elements: dict
    required: true
  realm:
    description: What the file protects (e.g. the domain); part of every salt.
    type: str
    required: true
  cost:
    description: bcrypt's cost (log2 of the rounds); nginx checks a password on every request.
    type: int
    default: 8
"""

EXAMPLES = r"""
- name: Write the Flower password file
  ansible.builtin.copy:
    content: "{{ celery_flower_users | pyfleet_htpasswd('flower.example.com') | join('\n') }}\n"
    dest: /etc/nginx/pyfleet/flower.htpasswd
    owner: root
    group: www-data
    mode: "0640"
  no_log: true
"""

RETURN = r"""
_value:
  description: One C(name:hash) line per user, in input order.
  type: list
  elements: str
"""

USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _salt(realm, name, cost):
    """A bcrypt salt (``$2b$NN$`` and 22 characters) fixed by realm and user name."""
    raw = hashlib.sha256(f"pyfleet-htpasswd\0{realm}\0{name}".encode()).digest()[:16]
    text = base64.b64encode(raw).decode().rstrip("=").translate(str.maketrans(_STD, _BCRYPT))
    return f"$2b${cost:02d}${text}".encode()


def pyfleet_htpasswd(users, realm, cost=8):
    """``name:bcrypt-hash`` lines for nginx; see DOCUMENTATION."""
    if bcrypt is None:
        raise AnsibleFilterError(
            "pyfleet_htpasswd: the bcrypt Python package is missing on the controller; pip install bcrypt"
        )
    if not isinstance(realm, str) or not realm:
        raise AnsibleFilterError("pyfleet_htpasswd: realm must be a non-empty string, e.g. the domain")
    if isinstance(cost, bool) or not isinstance(cost, int) or not 4 <= cost <= 14:
        raise AnsibleFilterError(f"pyfleet_htpasswd: cost {cost!r} is not an integer from 4 to 14")
    if not isinstance(users, list) or not users:
        raise AnsibleFilterError("pyfleet_htpasswd: expected a non-empty list of {name, password}")
    lines, seen = [], set()
    for index, user in enumerate(users):
        if not isinstance(user, dict):
            raise AnsibleFilterError(f"pyfleet_htpasswd: user #{index} is not a mapping with name and password")
        name, password = user.get("name"), user.get("password")
        if not isinstance(name, str) or not USER_RE.fullmatch(name) or name in seen:
            raise AnsibleFilterError(
                f"pyfleet_htpasswd: user #{index} has no valid, unique name (letters, digits, . _ @ -)"
            )
        if not isinstance(password, str) or not password:
            raise AnsibleFilterError(f"pyfleet_htpasswd: user #{index} ({name}) has no password")
        if len(password.encode()) > 72:
            # bcrypt reads 72 bytes at most; refuse rather than ignore the rest.
            raise AnsibleFilterError(
                f"pyfleet_htpasswd: user #{index} ({name}): the password is longer than 72 bytes; use a shorter one"
            )
        seen.add(name)
        hashed = bcrypt.hashpw(password.encode(), _salt(realm, name, cost)).decode()
        lines.append(f"{name}:{hashed}")
    return lines


class FilterModule:
    """pyfleet's password file filter."""

    def filters(self):
        """Filter name -> function."""
        return {"pyfleet_htpasswd": pyfleet_htpasswd}
