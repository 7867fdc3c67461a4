"""Flower: how the load balancers serve it and what its unit may reach.

``plan_flower`` checks the flower host's domain, users and port and decides
the address Flower listens on, what nginx proxies to and the IPs the unit may
talk to (the broker and the load balancers).
"""

import re

from pyfleet import addresses
from pyfleet.errors import PyfleetError
from pyfleet.values import kind_of as _kind, unknown_keys

FLOWER = "celery_flower"
FLOWER_DOMAIN = "celery_flower_domain"
FLOWER_USERS = "celery_flower_users"
FLOWER_PORT = "celery_flower_port"
# Read from the flower host only (its host_vars or group_vars).
FLOWER_KEYS = (FLOWER_DOMAIN, FLOWER_USERS, FLOWER_PORT)
DEFAULT_FLOWER_PORT = 5555

DOMAIN_RE = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]")
# htpasswd user names: no colon (the separator), nothing nginx or a shell would mangle.
FLOWER_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def plan_flower(host, raw, groups, apps, hostvars=None, loadbalancer_group="loadbalancers", broker_ip=None):
    """Where Flower runs and how the load balancers reach it, checked.

    ``host``: the one host with ``celery_flower: true``. ``raw``: its variables
    ``celery_flower_domain`` (the name the load balancers serve it at, over
    HTTPS), ``celery_flower_users`` (``[{name, password}]``, HTTP basic auth on
    the load balancers; passwords from ansible-vault) and ``celery_flower_port``
    (default 5555). ``apps``: the normalised apps (a domain may serve one thing).

    Returns ``{host, domain, port, users, address, endpoint, allow}``: ``users``
    holds the names only (never a password); ``address`` is the host's private
    address (Flower listens there), ``endpoint`` what nginx proxies to and
    ``allow`` the IPs the Flower unit may talk to besides localhost (the broker
    and every load balancer). The last three are None/[] without ``hostvars``.
    """
    domain = raw.get(FLOWER_DOMAIN)
    if domain is None or domain == "":
        raise PyfleetError(
            f"{FLOWER_DOMAIN}: not set but {host} runs flower, so the load balancers cannot serve it; "
            f"set {FLOWER_DOMAIN}: flower.example.com (a name that resolves to the load balancers) "
            f"or remove {FLOWER} from {host}"
        )
    if not isinstance(domain, str) or not DOMAIN_RE.fullmatch(domain):
        raise PyfleetError(
            f"{FLOWER_DOMAIN}: {domain!r} is not a lowercase DNS name; set {FLOWER_DOMAIN}: flower.example.com"
        )
    for app in apps or []:
        if domain in (app.get("domains") or []):
            raise PyfleetError(
                f"{FLOWER_DOMAIN}: {domain} is also a domain of app {app['name']}; give flower a name of its own"
            )
    users = raw.get(FLOWER_USERS)
    if not users:
        raise PyfleetError(
            f"{FLOWER_USERS}: not set but {host} runs flower, so nobody could log in; set "
            f"{FLOWER_USERS}: [{{name: ops, password: '{{{{ vault_flower_password }}}}'}}] (ansible-vault)"
        )
    if not isinstance(users, list):
        raise PyfleetError(
            f"{FLOWER_USERS}: expected a list of {{name, password}}, got {_kind(users)}; "
            f"write {FLOWER_USERS}: [{{name: ops, password: ...}}]"
        )
    names = []
    for index, user in enumerate(users):
        where = f"{FLOWER_USERS}[{index}]"
        if not isinstance(user, dict):
            # Never the value: it may hold a password.
            raise PyfleetError(f"{where}: expected a mapping {{name, password}}, got {_kind(user)}; fix it")
        unknown_keys(where, user, ("name", "password"))
        name = user.get("name")
        if not isinstance(name, str) or not FLOWER_USER_RE.fullmatch(name):
            raise PyfleetError(
                f"{where}.name: {name!r} is not a user name (letters, digits, . _ @ -, no colon); set name: ops"
            )
        if name in names:
            raise PyfleetError(f"{where}.name: user {name} is listed twice; remove one")
        password = user.get("password")
        if not isinstance(password, str) or not password:
            raise PyfleetError(
                f"{where}.password (user {name}): not set or not a string; "
                "set password: '{{ vault_flower_password }}' from ansible-vault"
            )
        if len(password.encode()) > 72:
            # bcrypt (the load balancer's password file) reads 72 bytes at most.
            raise PyfleetError(f"{where}.password (user {name}): longer than 72 bytes; use a shorter password")
        names.append(name)
    port = addresses.port(raw.get(FLOWER_PORT), FLOWER_PORT, host, DEFAULT_FLOWER_PORT)
    balancers = list(groups.get(loadbalancer_group) or [])
    if not balancers:
        raise PyfleetError(
            f"{FLOWER} on {host}: group {loadbalancer_group} has no host, and flower is only reached "
            f"through the load balancers; add a host to group {loadbalancer_group} or remove {FLOWER}"
        )
    address, endpoint, allow = None, None, []
    if hostvars is not None:
        address = addresses.private_address(host, hostvars)
        endpoint = addresses.endpoint(address, port)
        allow = [broker_ip] if broker_ip else []
        for lb in balancers:
            ip = addresses.ip(
                addresses.private_address(lb, hostvars), lb, "the flower unit admits the load balancers by IP only"
            )
            if ip not in allow:
                allow.append(ip)
    return {
        "host": host,
        "domain": domain,
        "port": port,
        "users": names,
        "address": address,
        "endpoint": endpoint,
        "allow": allow,
    }
