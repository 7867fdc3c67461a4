"""Where hosts are reached: the one place that reads addresses and ports from hostvars.

A host's private address is ``pyfleet_private_address``, else ``ansible_host``,
else its inventory name: the load balancers proxy to it, the Celery clients
reach the broker at it, and the sandboxed units admit it by IP.
"""

import ipaddress
import re

from pyfleet.errors import PyfleetError
from pyfleet.values import is_int

PRIVATE_ADDRESS = "pyfleet_private_address"
HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


def host_vars(hostvars, host):
    """The variables of ``host`` (Ansible's lazily templated hostvars, or a plain dict), {} when unknown."""
    # Not .get(): Ansible's HostVars answers Undefined for an unknown host, not the default.
    return hostvars[host] if host in hostvars else {}  # noqa: SIM401


def private_address(host, hostvars):
    """The host's private address without brackets: an IP or a host name, else a one-line error."""
    hv = host_vars(hostvars, host)
    address = str(hv.get(PRIVATE_ADDRESS) or hv.get("ansible_host") or host).strip().strip("[]")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        if not HOSTNAME_RE.fullmatch(address):
            raise PyfleetError(
                f"{PRIVATE_ADDRESS} on {host}: {address!r} is not an IP address or host name; "
                f"set {PRIVATE_ADDRESS} of {host} to its private IP"
            ) from None
        return address


def check_private(host, hostvars):
    """A ``pyfleet_private_address`` that is set names a private (not a global) IP, or a host name."""
    value = host_vars(hostvars, host).get(PRIVATE_ADDRESS)
    if not value:
        return
    address = private_address(host, hostvars)
    try:
        public = ipaddress.ip_address(address).is_global
    except ValueError:  # a host name: its address is the resolver's business
        return
    if public:
        raise PyfleetError(
            f"{PRIVATE_ADDRESS} on {host}: {address!r} is a public address, and pyfleet's hosts reach each other "
            f"on their private network; set {PRIVATE_ADDRESS} of {host} to its private IP"
        )


def endpoint(address, port):
    """``address:port`` as nginx and URLs write it (an IPv6 address in brackets)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def ip(address, host, why):
    """``address`` as an IP for systemd's IPAddressAllow, or a one-line error saying ``why`` it must be one."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise PyfleetError(
            f"{PRIVATE_ADDRESS} on {host}: {address!r} is not an IP address, and {why}; "
            f"set {PRIVATE_ADDRESS} of {host} to its private IP"
        ) from None


def port(value, variable, host, default):
    """``value`` as a TCP port (digits in a string too; unset: ``default``), or a one-line error naming ``variable``."""
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not is_int(value) or not 1 <= value <= 65535:
        raise PyfleetError(f"{variable} on {host}: {value!r} is not a TCP port; set {variable}: {default}")
    return value
