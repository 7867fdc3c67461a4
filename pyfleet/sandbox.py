"""The systemd sandbox of every pyfleet unit (app servers, Celery workers, beat, Flower).

One list of hardening options for all of them: ``systemd-analyze security``
scores a unit with these 0.9 to 1.1 inside a lab host (9.2 with only User=). An app
may drop an option only through its spec's ``sandbox_relax``, with a reason
(``pyfleet.apps`` checks it); ``directives`` writes the unit's lines.
"""

# Option -> values; an option with several values is written once per value.
OPTIONS = {
    "NoNewPrivileges": ["yes"],
    "ProtectSystem": ["strict"],
    "ProtectHome": ["yes"],
    "PrivateTmp": ["yes"],
    "PrivateDevices": ["yes"],
    "PrivateUsers": ["yes"],
    "ProtectKernelTunables": ["yes"],
    "ProtectKernelModules": ["yes"],
    "ProtectKernelLogs": ["yes"],
    "ProtectControlGroups": ["yes"],
    "ProtectClock": ["yes"],
    "ProtectHostname": ["yes"],
    "ProtectProc": ["invisible"],
    "ProcSubset": ["pid"],
    "RestrictNamespaces": ["yes"],
    "RestrictRealtime": ["yes"],
    "RestrictSUIDSGID": ["yes"],
    "LockPersonality": ["yes"],
    # Can break code that JIT-compiles or uses some cffi callbacks: relax per app.
    "MemoryDenyWriteExecute": ["yes"],
    "RemoveIPC": ["yes"],
    "CapabilityBoundingSet": [""],
    "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
    "SystemCallArchitectures": ["native"],
    "SystemCallFilter": ["@system-service", "~@privileged @resources"],
    "UMask": ["0077"],
    "IPAddressDeny": ["any"],
}
# What sandbox_relax may name: the options above and the IP allow list.
RELAXABLE = tuple(sorted(set(OPTIONS) | {"IPAddressAllow"}))


def directives(relax=(), read_write=(), ip_allow=(), syscalls=()):
    """The [Service] lines of a sandboxed unit.

    ``relax``: the app's ``sandbox_relax`` entries (``{option, reason}``);
    relaxing IPAddressAllow lifts the IP deny list too. ``read_write``: paths
    the unit may write. ``ip_allow``: addresses it may talk to over IP (the
    rest is denied). ``syscalls``: system call groups allowed on top of
    @system-service (gunicorn needs @chown for its socket).
    """
    relaxed = {r["option"] for r in relax}
    if "IPAddressAllow" in relaxed:
        relaxed.add("IPAddressDeny")
    lines = [f"ReadWritePaths={path}" for path in read_write]
    lines += [
        f"{option}={value}" for option, values in sorted(OPTIONS.items()) if option not in relaxed for value in values
    ]
    if "SystemCallFilter" not in relaxed:
        lines += [f"SystemCallFilter={group}" for group in syscalls]
        lines.append("SystemCallErrorNumber=EPERM")
    if "IPAddressDeny" not in relaxed:
        lines.append(f"IPAddressAllow={' '.join(ip_allow)}")
    lines += [f"# Relaxed for this app: {r['option']} ({r['reason']})." for r in relax]
    return lines
