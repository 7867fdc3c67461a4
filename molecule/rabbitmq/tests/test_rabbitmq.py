"""What a user of the rabbitmq role notices on a broker host: AMQP over the real server.

Two hosts (molecule.yml): the fleet's broker on Debian 12 and a standalone
RabbitMQ, from the same plan inputs, on the Debian 13 worker host. Every test
runs on both; each host also logs in to the other host's broker over the
network. Module-scoped fixtures collect the facts once per host (one AMQP
client run for every login case, one listener list, one batch of rabbitmqctl
queries) and each test checks one thing.
"""

import json
import re
from urllib.parse import unquote, urlsplit

import pytest
import testinfra

from pyfleet.broker import broker_url

BOOKWORM = "pyfleet-molecule-rabbitmq"
TRIXIE = "pyfleet-molecule-rabbitmq-trixie"
# The platforms of molecule.yml, reached with `podman exec`: testinfra's ansible
# backend would run every command through an Ansible module, ten times slower.
testinfra_hosts = [f"podman://{name}" for name in (BOOKWORM, TRIXIE)]
# The RabbitMQ of each suite (Debian's own packages).
VERSIONS = {BOOKWORM: "3.10.", TRIXIE: "4."}

APP = "hello"
PASSWORD = "molecule-only-rabbitmq/password"
# celery_worker_catalogue's longest time_limit is 5400 s; the plan's visibility
# timeout (twice that) becomes consumer_timeout, in milliseconds.
CONSUMER_TIMEOUT_MS = 2 * 5400 * 1000

# py-amqp (Celery's AMQP library) per case: log in, declare, publish, get back.
CLIENT = """
import json, sys, amqp
results = {}
for name, (address, user, password, vhost) in json.loads(sys.argv[1]).items():
    try:
        with amqp.Connection(host=address + ':5672', userid=user, password=password,
                             virtual_host=vhost, connect_timeout=5) as conn:
            channel = conn.channel()
            channel.queue_declare('pyfleet-check', auto_delete=True)
            channel.basic_publish(amqp.Message('ping'), routing_key='pyfleet-check')
            message = channel.basic_get('pyfleet-check', no_ack=True)
            results[name] = 'GOT ' + str(message.body if message else None)
    except Exception as exc:
        results[name] = 'REFUSED ' + type(exc).__name__
print(json.dumps(results))
"""


def _address(host):
    """A host's private address: the source address of its default route, as Ansible's ansible_default_ipv4."""
    return re.search(r"\bsrc (\S+)", host.check_output("ip -4 route get 1.1.1.1")).group(1)


@pytest.fixture(scope="module")
def addresses():
    """Host name -> private address (what the role binds besides loopback), read on each host."""
    return {name: _address(testinfra.get_host(f"podman://{name}")) for name in (BOOKWORM, TRIXIE)}


@pytest.fixture(scope="module")
def name(host):
    return host.backend.get_hostname()


@pytest.fixture(scope="module")
def address(name, addresses):
    return addresses[name]


@pytest.fixture(scope="module")
def logins(host, name, address, addresses):
    """Case -> 'GOT ping' or 'REFUSED <error>', from one client run on the host."""
    # The URL the fleet's workers get (pyfleet_broker_url: the broker is the
    # Debian 12 host), its parts used as Celery would.
    url = urlsplit(
        broker_url(
            ["broker"], {"broker": {"pyfleet_private_address": addresses[BOOKWORM]}}, PASSWORD, kind="rabbitmq", app=APP
        )
    )
    assert (url.scheme, url.hostname, url.port) == ("amqp", addresses[BOOKWORM], 5672)
    other = addresses[TRIXIE if name == BOOKWORM else BOOKWORM]
    cases = {
        "broker_url": [url.hostname, unquote(url.username), unquote(url.password), unquote(url.path[1:])],
        "private": [address, APP, PASSWORD, APP],
        "other_host": [other, APP, PASSWORD, APP],
        "loopback": ["127.0.0.1", APP, PASSWORD, APP],
        "wrong_password": [address, APP, "wrong-password-of-16-chars", APP],
        "guest_loopback": ["127.0.0.1", "guest", "guest", "/"],
        "guest_private": [address, "guest", "guest", "/"],
        "other_vhost": [address, APP, PASSWORD, "/"],
    }
    return json.loads(host.check_output("python3 -c %s %s", CLIENT, json.dumps(cases)))


@pytest.fixture(scope="module")
def listening(host):
    """Local addresses of the listening TCP sockets."""
    return [line.split()[3] for line in host.check_output("ss -Htln").splitlines()]


@pytest.fixture(scope="module")
def ctl(host):
    """Answers of rabbitmqctl, in one remote command."""
    queries = {
        "users": "list_users",
        "permissions": f"list_user_permissions {APP}",
        "consumer_timeout": "eval 'application:get_env(rabbit, consumer_timeout).'",
    }
    script = "; ".join(f"echo '### {name}'; rabbitmqctl -q {query}" for name, query in queries.items())
    answers, name = {}, None
    for line in host.check_output(script).splitlines():
        if line.startswith("### "):
            name = line[4:]
            answers[name] = []
        else:
            answers[name].append(line)
    return answers


def test_rabbitmq_of_the_suite_running_and_enabled(host, name):
    assert host.package("rabbitmq-server").version.startswith(VERSIONS[name])
    service = host.service("rabbitmq-server")
    assert service.is_running
    assert service.is_enabled


def test_fleet_broker_url_works_from_every_host(logins):
    # From the Debian 13 host this crosses the network, as a worker host's login does.
    assert logins["broker_url"] == "GOT ping"


def test_app_user_works_on_the_private_address(logins):
    assert logins["private"] == "GOT ping"


def test_app_user_works_from_the_other_host(logins):
    assert logins["other_host"] == "GOT ping"


def test_app_user_works_on_loopback(logins):
    assert logins["loopback"] == "GOT ping"


def test_wrong_password_refused(logins):
    assert logins["wrong_password"] == "REFUSED AccessRefused"


@pytest.mark.parametrize("case", ["guest_loopback", "guest_private"])
def test_guest_refused(logins, case):
    assert logins[case] == "REFUSED AccessRefused"


def test_app_user_has_no_access_to_other_vhosts(logins):
    assert logins["other_vhost"].startswith("REFUSED")


def test_app_user_permissions_only_on_its_vhost(ctl):
    assert [line.split() for line in ctl["permissions"][1:]] == [[APP, ".*", ".*", ".*"]]


def test_only_the_app_user_exists_and_is_no_administrator(ctl):
    assert ctl["users"][1:] == [f"{APP}\t[]"]


def test_consumer_timeout_outlasts_the_longest_task(ctl):
    assert ctl["consumer_timeout"] == [f"{{ok,{CONSUMER_TIMEOUT_MS}}}"]


def test_amqp_listens_only_on_private_address_and_loopback(listening, address):
    assert sorted(a for a in listening if a.endswith(":5672")) == sorted([f"{address}:5672", "127.0.0.1:5672"])


def test_distribution_port_only_on_loopback(listening):
    assert [a for a in listening if a.endswith(":25672")] == ["127.0.0.1:25672"]


def test_erlangs_port_mapper_only_on_loopback(listening):
    # Debian's epmd.socket listens on every address (systemd holds it: pid 1).
    assert [a for a in listening if a.endswith(":4369")] == ["127.0.0.1:4369"]


def test_open_file_limit_fits_the_container(host):
    assert host.check_output("systemctl show -P LimitNOFILE rabbitmq-server") == "4096"


def test_logs_go_to_the_journal(host):
    assert "Server startup complete" in host.check_output("journalctl -u rabbitmq-server --no-pager -q")


def test_unit_sandboxed(host):
    # Debian's unit plus pyfleet's drop-in; lower is safer (the Erlang JIT needs W+X memory).
    out = host.run("systemd-analyze security rabbitmq-server.service --no-pager").stdout
    score = float(re.search(r"exposure level for \S+: ([0-9.]+)", out).group(1))
    assert score <= 2.0, out.strip().splitlines()[-1]


# The switch of pyfleet_broker_kind from redis (prepare.yml left it as pyfleet's
# broker) to rabbitmq: site.yml's last play (playbooks/tasks/prune.yml) stopped
# Redis and removed pyfleet's drop-in; its data stayed.
@pytest.mark.parametrize("host_name", [BOOKWORM])
def test_the_broker_before_the_switch_is_stopped_its_data_kept(host_name):
    host = testinfra.get_host(f"podman://{host_name}")
    redis = host.service("redis-server")
    assert not redis.is_running and not redis.is_enabled
    assert not host.file("/etc/systemd/system/redis-server.service.d/pyfleet.conf").exists
    assert host.file("/var/lib/redis/dump.rdb").exists
    assert host.service("rabbitmq-server").is_running
