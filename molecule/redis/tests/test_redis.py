"""What a user of the redis role notices on the broker host."""

import re

import pytest

PASSWORD = "molecule-only-broker-password"


def _cli(host, *args, auth=True):
    prefix = f"REDISCLI_AUTH={PASSWORD} " if auth else ""
    return host.run(prefix + "redis-cli --no-auth-warning -h 127.0.0.1 " + " ".join(args))


@pytest.fixture(scope="module")
def address(host):
    """The container's private address (what the role binds besides loopback)."""
    return host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"]["address"]


def test_redis_running_and_enabled(host):
    service = host.service("redis-server")
    assert service.is_running
    assert service.is_enabled


def test_ping_with_password(host):
    assert _cli(host, "ping").stdout.strip() == "PONG"


def test_refused_without_password(host):
    assert "NOAUTH" in _cli(host, "ping", auth=False).stdout


def test_refused_with_wrong_password(host):
    result = host.run("REDISCLI_AUTH=wrong redis-cli --no-auth-warning -h 127.0.0.1 ping")
    assert "WRONGPASS" in result.stdout + result.stderr


def test_ping_on_private_address(host, address):
    result = host.run(f"REDISCLI_AUTH={PASSWORD} redis-cli --no-auth-warning -h {address} ping")
    assert result.stdout.strip() == "PONG"


@pytest.mark.parametrize(
    ("setting", "value"),
    [("maxmemory-policy", "noeviction"), ("appendonly", "yes"), ("protected-mode", "yes")],
)
def test_broker_setting(host, setting, value):
    assert _cli(host, "config", "get", setting).stdout.split() == [setting, value]


def test_listens_only_on_private_address_and_loopback(host, address):
    lines = host.run("ss -Htlnp").stdout.splitlines()
    local = sorted(line.split()[3] for line in lines if "redis-server" in line)
    assert local == sorted([f"{address}:6379", "127.0.0.1:6379"])


def test_config_not_world_readable(host):
    config = host.file("/etc/redis/redis.conf")
    assert config.user == "redis"
    assert config.mode == 0o640


def test_config_not_writable_by_redis(host):
    # Debian lets redis rewrite /etc/redis; pyfleet's drop-in takes that away.
    assert _cli(host, "config", "rewrite").stdout.strip() != "OK"


def test_appendonly_file_written(host):
    assert host.file("/var/lib/redis/appendonlydir").is_directory


def test_unit_sandboxed(host):
    # Debian's unit plus pyfleet's drop-in; lower is safer (the app units aim at 1.5).
    out = host.run("systemd-analyze security redis-server.service --no-pager").stdout
    score = float(re.search(r"exposure level for \S+: ([0-9.]+)", out).group(1))
    assert score <= 1.5, out.strip().splitlines()[-1]
