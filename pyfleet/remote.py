"""Fabric connections to inventory hosts, with the SSH settings Ansible uses."""

import logging
from concurrent.futures import ThreadPoolExecutor

from fabric import Connection

from pyfleet.errors import PyfleetError

# paramiko logs connection failures with tracebacks; pyfleet reports them as one line.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)


def connection(inv, host):
    """A Fabric Connection to ``host`` from its inventory variables (ansible_host, user, port, key)."""
    if host not in inv.hosts:
        raise PyfleetError(f"no host '{host}' in inventory {inv.path}; hosts: {', '.join(inv.hosts)}")
    hv = inv.hosts[host]
    kwargs = {}
    if hv.get("ansible_ssh_private_key_file"):
        kwargs["key_filename"] = hv["ansible_ssh_private_key_file"]
    return Connection(
        hv.get("ansible_host", host),
        user=hv.get("ansible_user", "root"),
        port=int(hv.get("ansible_port", 22)),
        connect_timeout=10,
        connect_kwargs=kwargs,
    )


def run_on(inv, hosts, command, sudo=False):
    """Run ``command`` on ``hosts`` in parallel; {host: (exit code, stdout)}.

    A host that cannot be reached raises one PyfleetError naming it.
    """

    def one(host):
        conn = connection(inv, host)
        try:
            cmd = command if not sudo or conn.user == "root" else f"sudo -n {command}"
            result = conn.run(cmd, hide=True, warn=True, in_stream=False)
            return host, (result.exited, result.stdout)
        except Exception as exc:  # paramiko/socket errors: report them as one line
            raise PyfleetError(
                f"host {host} ({conn.host}) is unreachable: {exc.__class__.__name__}: {exc}; "
                "check it is up (fab lab.up for the lab) and its ansible_host"
            ) from None
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=min(12, max(1, len(hosts)))) as pool:
        return dict(pool.map(one, hosts))
