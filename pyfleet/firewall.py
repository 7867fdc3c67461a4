"""The host firewall's openings, decided from the inventory's groups (roles/firewall renders them).

Every host drops what it is not told to accept. What each host accepts follows
from what it runs and who talks to it:

- load balancers: HTTP and HTTPS from anywhere;
- web hosts: nginx's port from the load balancers only (from anywhere in an
  inventory without load balancers: then they are the edge);
- brokers: Redis's or RabbitMQ's port from the web and worker hosts;
- the Flower host: Flower's port from the load balancers;
- every host: SSH from ``pyfleet_firewall_ssh_allow`` (default: anywhere), and
  what ``pyfleet_firewall_allow`` adds on that host ({port, from}).

A host added to a group changes the openings on the others (a new worker's
address on the broker), so one converge of ``site.yml`` opens what it needs.
"""

import ipaddress

from pyfleet import addresses
from pyfleet.broker import BROKER_PORTS
from pyfleet.errors import PyfleetError
from pyfleet.values import kind_of

ENABLED = "pyfleet_firewall"
SSH_ALLOW = "pyfleet_firewall_ssh_allow"
EXTRA = "pyfleet_firewall_allow"
ANYWHERE = ("0.0.0.0/0", "::/0")
LB_PORTS = (("loadbalancer_http_port", 80, "HTTP"), ("loadbalancer_https_port", 443, "HTTPS"))


def plan_firewall(groups, hostvars, upstreams, loadbalancers, broker_kind, flower):
    """host -> {enabled, rules: [{port, why, sources, matches}]}, or a one-line PyfleetError.

    ``upstreams``/``loadbalancers``/``flower`` are the plan's (addresses already
    checked); ``flower`` is the Celery plan's Flower ({host, port}) or None.
    """
    everyone = sorted({h for members in groups.values() for h in members})
    enabled = {h: addresses.host_vars(hostvars, h).get(ENABLED, True) not in (False, "false", "no") for h in everyone}
    web_hosts = {s["host"] for u in upstreams for s in u["servers"]}
    # nftables matches addresses: the load balancers' (web hosts, Flower) and the broker's clients must be IPs.
    lbs = [_ip(lb["host"], hostvars, web_hosts | {(flower or {}).get("host")}, enabled) for lb in loadbalancers]
    edge = None if lbs else ANYWHERE  # no load balancer: the web hosts are the edge
    openings = {host: [] for host in everyone}

    for host in everyone:
        hv = addresses.host_vars(hostvars, host)
        ssh_port = addresses.port(hv.get("ansible_port"), "ansible_port", host, 22)
        openings[host].append((ssh_port, "SSH", _networks(hv.get(SSH_ALLOW, list(ANYWHERE)), SSH_ALLOW, host)))
        for index, extra in enumerate(hv.get(EXTRA) or []):
            openings[host].append(_extra(extra, index, host))
    for host in groups.get("loadbalancers", []):
        hv = addresses.host_vars(hostvars, host)
        for variable, default, why in LB_PORTS:
            port = addresses.port(hv.get(variable), variable, host, default)
            openings[host].append((port, f"{why}, the load balancer", ANYWHERE))
    for upstream in upstreams:
        for server in upstream["servers"]:
            why = "nginx of the web host, for the load balancers" if lbs else "nginx of the web host"
            openings[server["host"]].append((server["port"], why, edge or lbs))
    clients = sorted({h for g in ("web", "workers") for h in groups.get(g, [])})
    variable, default = BROKER_PORTS[broker_kind]
    brokers = groups.get("brokers", [])
    client_ips = [_ip(h, hostvars, set(brokers), enabled) for h in clients]
    for host in brokers:
        port = addresses.port(addresses.host_vars(hostvars, host).get(variable), variable, host, default)
        openings[host].append((port, f"{broker_kind}, for the web and worker hosts", client_ips))
    if flower:
        openings[flower["host"]].append((flower["port"], "Flower, for the load balancers", lbs))

    return {
        host: {
            "enabled": enabled[host],
            "rules": _merge(openings[host]) if enabled[host] else [],
        }
        for host in everyone
    }


def _ip(host, hostvars, readers, enabled):
    """The host's private address, which must be an IP if a firewall among ``readers`` matches it."""
    address = addresses.private_address(host, hostvars)
    strict = sorted(h for h in readers if h and enabled.get(h))
    if not strict:
        return address
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise PyfleetError(
            f"{addresses.PRIVATE_ADDRESS} on {host}: {address!r} is not an IP address, and the firewall of "
            f"{strict[0]} admits {host} by IP; set {addresses.PRIVATE_ADDRESS} of {host} to its private IP "
            f"(or {ENABLED}: false on {strict[0]} if you run your own firewall)"
        ) from None


def _networks(value, variable, host):
    """A list of IP networks (or addresses) as strings, else a one-line error naming ``variable``."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise PyfleetError(
            f"{variable} on {host}: expected a list of IP networks, got {kind_of(value)}; "
            f"set {variable}: ['0.0.0.0/0', '::/0'] (anywhere) or your admin networks"
        )
    networks = []
    for item in value:
        try:
            networks.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError:
            raise PyfleetError(
                f"{variable} on {host}: {item!r} is not an IP network; write it like 192.0.2.0/24 or 2001:db8::/32"
            ) from None
    return networks


def _extra(extra, index, host):
    """One ``pyfleet_firewall_allow`` item: {port, from (networks, default anywhere), why}."""
    where = f"{EXTRA}[{index}] on {host}"
    if not isinstance(extra, dict) or "port" not in extra:
        raise PyfleetError(
            f"{where}: expected a mapping with port (and from); set it like {{port: 9100, from: [10.0.0.5]}}"
        )
    unknown = sorted(set(extra) - {"port", "from", "why"})
    if unknown:
        raise PyfleetError(f"{where}: unknown key {unknown[0]!r}; the keys are port, from and why")
    port = addresses.port(extra["port"], f"{EXTRA}[{index}].port", host, None)
    sources = _networks(extra.get("from", list(ANYWHERE)), f"{EXTRA}[{index}].from", host)
    return port, str(extra.get("why") or f"{EXTRA}[{index}]"), sources


def _merge(openings):
    """Rules sorted by port, one per port: ``sources`` (networks) joined, and ``matches``,
    the nftables source matches that accept them ("" when open to every address)."""
    by_port = {}
    for port, why, sources in openings:
        rule = by_port.setdefault(port, {"why": [], "sources": set()})
        rule["why"].append(why)
        rule["sources"].update(ipaddress.ip_network(s, strict=False) for s in sources)
    rules = []
    for port in sorted(by_port):
        nets = by_port[port]["sources"]
        matches, sources = [], []
        for version, family, proto in ((4, "ip", "ipv4"), (6, "ip6", "ipv6")):
            # Collapsed: nftables refuses a set whose intervals overlap.
            mine = list(ipaddress.collapse_addresses(n for n in nets if n.version == version))
            sources += [str(n) for n in mine]
            if any(n.prefixlen == 0 for n in mine):
                matches.append(f"meta nfproto {proto}")
            elif mine:
                matches.append(f"{family} saddr {{ {', '.join(_text(n) for n in mine)} }}")
        if matches == ["meta nfproto ipv4", "meta nfproto ipv6"]:
            matches = [""]
        if not matches:  # nobody may reach it (e.g. Flower without load balancers)
            continue
        why = "; ".join(dict.fromkeys(by_port[port]["why"]))
        rules.append({"port": port, "why": why, "sources": sources, "matches": matches})
    return rules


def _text(network):
    """A single address without its /32 or /128, as nftables lists it back."""
    return str(network.network_address) if network.num_addresses == 1 else str(network)


def ssh_lockout(ssh_connection, rules, host):
    """Why loading ``rules`` would lock out the SSH connection this play came in on, or "".

    ``ssh_connection``: the host's ``$SSH_CONNECTION`` ("client port server port"),
    empty when the play does not come over SSH (then nothing can be cut).
    """
    parts = (ssh_connection or "").split()
    if len(parts) != 4:
        return ""
    client, port = ipaddress.ip_address(parts[0].split("%")[0]), int(parts[3])
    if client.version == 6 and client.ipv4_mapped:
        client = client.ipv4_mapped
    rule = next((r for r in rules if r["port"] == port), None)
    if rule and any(client in ipaddress.ip_network(s) for s in rule["sources"]):
        return ""
    return (
        f"{SSH_ALLOW} on {host}: the firewall would refuse new SSH connections from {client} (this controller) "
        f"to port {port}; add {client} (or its network) to {SSH_ALLOW}"
    )
