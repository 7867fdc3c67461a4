"""Fabric connections to inventory hosts, with the SSH settings Ansible uses.

Host keys are checked as ssh checks them for Ansible: against the known_hosts
files that the host's ``ansible_ssh_common_args``/``ansible_ssh_extra_args``
name with ``UserKnownHostsFile=`` (the lab's own file), else the user's
``~/.ssh/known_hosts`` and ``/etc/ssh/ssh_known_hosts``. An unknown or changed
key stops the command with one line naming the host and what to do; only
``StrictHostKeyChecking=no`` in those arguments (or ``ansible_host_key_checking:
false``) turns the check off, as it does for Ansible.

Commands run as root, as the playbooks' tasks do: through ``sudo -n`` when the
host's login user is not root and ``ansible_become`` is set (the login user needs
passwordless sudo for that).
"""

import logging
import os
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fabric import Connection
from paramiko import AuthenticationException, AutoAddPolicy, BadHostKeyException, RejectPolicy, SSHException

from pyfleet.errors import PyfleetError
from pyfleet.shell import ROOT

# paramiko logs connection failures with tracebacks; pyfleet reports them as one line.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)

DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")
LAB_STATE = ROOT / ".lab"


def _truthy(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on", "y")


def ssh_option(hv, name):
    """The value of ``-o Name=value`` (or ``-o Name value``) in the host's ssh args, else None."""
    words = []
    for var in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
        try:
            words += shlex.split(str(hv.get(var) or ""))
        except ValueError:
            continue
    found = None
    for i, word in enumerate(words):
        opt = word[2:] if word.startswith("-o") and len(word) > 2 else None
        if word == "-o" and i + 1 < len(words):
            opt = words[i + 1]
        if opt is None:
            continue
        key, _, value = opt.replace("=", " ", 1).partition(" ")
        if key.lower() == name.lower() and found is None:  # ssh: the first value given wins
            found = value.strip()
    return found


def host_key_policy(hv):
    """(check, known_hosts files) for the host: whether keys are checked, and against which files."""
    strict = ssh_option(hv, "StrictHostKeyChecking")
    if (strict or "").lower() in ("no", "off") or not _truthy(hv.get("ansible_host_key_checking", True)):
        return False, []
    files = ssh_option(hv, "UserKnownHostsFile")
    names = files.split() if files else list(DEFAULT_KNOWN_HOSTS)
    return True, [Path(os.path.expanduser(n)) for n in names if n != "/dev/null"]


def connection(inv, host):
    """A Fabric Connection to ``host`` from its inventory variables (ansible_host, user, port, key, host keys)."""
    if host not in inv.hosts:
        raise PyfleetError(f"no host '{host}' in inventory {inv.path}; hosts: {', '.join(inv.hosts)}")
    hv = inv.hosts[host]
    kwargs = {}
    if hv.get("ansible_ssh_private_key_file"):
        kwargs["key_filename"] = hv["ansible_ssh_private_key_file"]
    conn = Connection(
        hv.get("ansible_host", host),
        user=hv.get("ansible_user", "root"),
        port=int(hv.get("ansible_port", 22)),
        connect_timeout=10,
        connect_kwargs=kwargs,
    )
    check, files = host_key_policy(hv)
    if check:
        for f in files:
            if f.is_file():
                conn.client.load_system_host_keys(str(f))
        conn.client.set_missing_host_key_policy(RejectPolicy())
    else:
        conn.client.set_missing_host_key_policy(AutoAddPolicy())
    conn.pyfleet_host = host
    conn.pyfleet_known_hosts = files
    conn.pyfleet_sudo = _become_prefix(hv)
    return conn


def _become_prefix(hv):
    """``sudo -n [-u user] --`` when commands need it to run as the playbooks' tasks do, else ""."""
    user = hv.get("ansible_user", "root")
    if not _truthy(hv.get("ansible_become", False)):
        return ""
    target = hv.get("ansible_become_user", "root")
    if user == target:
        return ""
    return "sudo -n " + (f"-u {shlex.quote(target)} " if target != "root" else "") + "--"


def as_root(conn, command):
    """``command`` (a shell command line) as the connection's tasks run: through sudo when it logs in as a user."""
    prefix = getattr(conn, "pyfleet_sudo", "")
    return f"{prefix} sh -c {shlex.quote(command)}" if prefix else command


def host_key_error(host, address, port, exc, known_hosts):
    """One line for a refused host key: which host, why, and the fix (lab or real server)."""
    where = ", ".join(str(f) for f in known_hosts) or "no known_hosts file"
    name = address if int(port) == 22 else f"[{address}]:{port}"
    lab = any(LAB_STATE in Path(f).parents for f in known_hosts)
    changed = isinstance(exc, BadHostKeyException)
    if lab:
        what = "does not match" if changed else "is not in"
        return (
            f"host {host} ({address}): its SSH host key {what} the lab's known_hosts ({where}); "
            "fab lab.up reads the lab hosts' keys again"
        )
    if changed:
        return (
            f"host {host} ({address}): its SSH host key CHANGED (does not match {where}): the server was "
            "reinstalled, or someone is in between; if you know it was reinstalled, check the new key's "
            f"fingerprint on the server, then ssh-keygen -R {name} and accept it with ssh once"
        )
    return (
        f"host {host} ({address}): its SSH host key is unknown (not in {where}); check the key's fingerprint "
        f"on the server and accept it with ssh once (or add it to {where.split(', ')[0]})"
    )


def open_checked(conn):
    """Open ``conn``; a refused host key or an unreachable host raises one PyfleetError naming it."""
    host = getattr(conn, "pyfleet_host", conn.host)
    try:
        conn.open()
    except BadHostKeyException as exc:
        raise PyfleetError(host_key_error(host, conn.host, conn.port, exc, conn.pyfleet_known_hosts)) from None
    except AuthenticationException as exc:
        raise _login_failed(host, conn, exc) from None
    except SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise PyfleetError(host_key_error(host, conn.host, conn.port, exc, conn.pyfleet_known_hosts)) from None
        if "No authentication methods available" in str(exc) or _refused_login(conn):
            raise _login_failed(host, conn, exc) from None
        raise _unreachable(host, conn, exc) from None
    except Exception as exc:  # paramiko/socket errors: one line
        raise _unreachable(host, conn, exc) from None


def _refused_login(conn):
    """Whether the host was reached and its key accepted but no login succeeded.

    paramiko tries a key file as each key type in turn and raises the last error,
    so a refused RSA or ECDSA key surfaces as "encountered EC key, expected
    OPENSSH key", not as an AuthenticationException.
    """
    transport = conn.client.get_transport()
    return transport is not None and transport.is_active() and not transport.is_authenticated()


def _login_failed(host, conn, exc):
    return PyfleetError(
        f"host {host} ({conn.host}): {conn.user} could not log in ({exc}); "
        "check ansible_user and ansible_ssh_private_key_file (the lab: fab lab.up)"
    )


class Unreachable(PyfleetError):
    """A host that could not be reached (not a refused key or sudo); ``cause``: the network error, one line."""

    def __init__(self, host, address, cause):
        self.cause = cause
        super().__init__(
            f"host {host} ({address}) is unreachable: {cause}; check it is up (fab lab.up for the lab) and its ansible_host"
        )


def _unreachable(host, conn, exc):
    return Unreachable(host, conn.host, f"{exc.__class__.__name__}: {exc}")


def sudo_failure(host, conn, result):
    """A PyfleetError when sudo itself refused the command (no passwordless sudo), else None."""
    if not getattr(conn, "pyfleet_sudo", "") or result.exited != 1:
        return None
    said = [line for line in (result.stderr or "").splitlines() if line.startswith("sudo: ")]
    if not said:
        return None
    return PyfleetError(
        f"host {host}: {conn.user} may not run commands as root ({said[-1]}); "
        f"fab runs them with sudo -n: give {conn.user} passwordless sudo there (NOPASSWD in /etc/sudoers.d)"
    )


def run(conn, command, **kwargs):
    """Run ``command`` as root (see as_root) on an open or new connection; the invoke Result.

    Refused host keys, unreachable hosts and refused sudo raise one PyfleetError naming the host.
    """
    host = getattr(conn, "pyfleet_host", conn.host)
    open_checked(conn)
    try:
        result = conn.run(as_root(conn, command), warn=True, in_stream=False, **kwargs)
    except Exception as exc:  # the connection broke: one line
        raise _unreachable(host, conn, exc) from None
    error = sudo_failure(host, conn, result)
    if error:
        raise error
    return result


def run_on(inv, hosts, command):
    """Run ``command`` (as root) on ``hosts`` in parallel; {host: (exit code, stdout)}.

    A host that cannot be reached raises one PyfleetError naming it.
    """

    def one(host):
        conn = connection(inv, host)
        try:
            result = run(conn, command, hide=True)
            return host, (result.exited, result.stdout)
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=min(12, max(1, len(hosts)))) as pool:
        return dict(pool.map(one, hosts))
