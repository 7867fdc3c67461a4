"""The network around the apps: each host's firewall, and the forwarded headers the apps see.

The reachability matrix tries every pyfleet port of every lab host from every
other lab host: what the groups say must answer answers, and nothing else does
(a dropped packet or a refused connection both count as closed).
"""

import json
import socket

import pytest

from pyfleet.load import get_json

PORTS = {"ssh": 22, "http": 80, "https": 443, "redis": 6379, "amqp": 5672, "flower": 5555}
APPS = {"hello": "hello.lab.test", "hello-async": "hello-async.lab.test"}
# Run on a source host: connect to every (address, port) at once; print which answered.
PROBE = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def probe(target):
    try:
        socket.create_connection((target[0], target[1]), timeout=2).close()
        return True
    except OSError:
        return False
targets = json.loads(sys.argv[1])
with ThreadPoolExecutor(len(targets)) as pool:
    print(json.dumps([[t, ok] for t, ok in zip(targets, pool.map(probe, targets))]))
"""


def expected_open(inv, source, target):
    """The pyfleet ports of ``target`` that ``source`` may reach, by the groups they are in."""
    groups = {g: set(hosts) for g, hosts in inv.groups.items()}
    ports = {PORTS["ssh"]}
    if target in groups["loadbalancers"]:
        ports |= {PORTS["http"], PORTS["https"]}
    if target in groups["web"] and source in groups["loadbalancers"]:
        ports.add(PORTS["http"])
    if target in groups["brokers"] and source in groups["web"] | groups["workers"]:
        ports.add(PORTS["redis"])
    if inv.hosts[target].get("celery_flower") and source in groups["loadbalancers"]:
        ports.add(PORTS["flower"])
    return ports


@pytest.fixture(scope="module")
def matrix(lab, inv, host_run):
    """{(source, target, port): answered} for every ordered pair of lab hosts and every pyfleet port."""
    addresses = lab["addresses"]
    by_address = {ip: host for host, ip in addresses.items()}
    result = {}
    for source in sorted(addresses):
        targets = [[addresses[t], p] for t in sorted(addresses) if t != source for p in sorted(PORTS.values())]
        out = host_run(source, f"python3 -c '{PROBE}' '{json.dumps(targets)}'")
        assert out.rc == 0, out.stderr
        for (ip, port), answered in json.loads(out.stdout):
            result[(source, by_address[ip], port)] = answered
    return result


def test_every_host_is_reachable_only_where_the_groups_say(matrix, inv):
    wrong = []
    for (source, target, port), answered in sorted(matrix.items()):
        if answered != (port in expected_open(inv, source, target)):
            wrong.append(f"{source} -> {target}:{port} {'answers' if answered else 'is closed'}")
    allowed = sum(matrix.values())
    print(f"reachability matrix: {allowed} allowed, {len(matrix) - allowed} denied of {len(matrix)}")
    assert not wrong, wrong
    # The matrix has both kinds, so the check can fail either way.
    assert 0 < allowed < len(matrix)


def test_every_host_drops_by_default(inv, host_run):
    for host in sorted(inv.hosts):
        out = host_run(host, "nft list chain inet pyfleet input")
        assert out.rc == 0, (host, out.stderr)
        assert "policy drop;" in out.stdout, (host, out.stdout)


def controller_address(address):
    """The source address this controller uses towards ``address`` (what a lab host sees as the client)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((address, 443))  # UDP: picks the route and source address, sends nothing
        return probe.getsockname()[0]


@pytest.mark.parametrize("app", sorted(APPS))
def test_the_app_sees_the_client_once_with_its_scheme_and_host(app, lb_address):
    seen = get_json(lb_address, APPS[app], path="/client")
    client = controller_address(lb_address)
    assert seen == {"remote_addr": client, "scheme": "https", "host": APPS[app], "x_forwarded_for": client}


@pytest.mark.parametrize("app", sorted(APPS))
def test_forged_forwarded_headers_from_anyone_but_a_load_balancer_change_nothing(app, lab, host_run):
    """A request straight to a web host (from the web host itself: nobody else may reach it) with forged headers."""
    web = "web1"
    own = lab["addresses"][web]
    out = host_run(
        web,
        f"curl -sf -H 'Host: {APPS[app]}' -H 'X-Forwarded-For: 203.0.113.66' -H 'X-Forwarded-Proto: https' "
        f"-H 'X-Forwarded-Host: forged.example' -H 'X-Forwarded-Ssl: on' http://{own}/client",
    )
    assert out.rc == 0, out.stderr
    assert json.loads(out.stdout) == {"remote_addr": own, "scheme": "http", "host": APPS[app], "x_forwarded_for": own}
