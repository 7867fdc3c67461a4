"""Which units and hosts `fab logs` and `fab restart` act on, from the lab inventory alone."""

import pytest

from pyfleet import commands, inventory
from pyfleet.errors import PyfleetError


@pytest.fixture(scope="module")
def lab_inv():
    return inventory.load("inventory/lab", with_connection=False)


@pytest.mark.parametrize("service, unit", [
    ("nginx", "nginx.service"),
    ("redis", "redis-server.service"),
    ("rabbitmq", "rabbitmq-server.service"),
    ("beat", "pyfleet-*-beat.service"),
    ("flower", "pyfleet-*-flower.service"),
    ("hello", "pyfleet-hello@*.service"),
    ("io", "pyfleet-*-worker@io.service"),
])
def test_unit_pattern(lab_inv, service, unit):
    assert commands.unit_pattern(lab_inv, service) == unit


@pytest.mark.parametrize("service, hosts", [
    ("nginx", "lb1,web1,web2"),
    ("redis", "broker1"),
    ("rabbitmq", "broker1"),
    ("beat", "worker2"),
    ("flower", "worker2"),
    ("hello", "web1,web2"),
    ("io", "worker1"),
])
def test_restart_targets(lab_inv, service, hosts):
    assert commands.restart_targets(lab_inv, service) == hosts


def test_unknown_service_is_one_line_listing_the_choices(lab_inv):
    with pytest.raises(PyfleetError, match=r"unknown service 'postgres'; choose nginx, redis, rabbitmq, beat, flower, "
                                           r"an app \(hello, hello-async\) or a worker type \(cpu, default, io\)"):
        commands.restart_targets(lab_inv, "postgres")
