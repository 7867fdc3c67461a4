"""What a user of the common role notices on a host."""

import glob
import os

import pytest


@pytest.mark.parametrize("package", ["ca-certificates", "curl", "acl", "jq"])
def test_package_installed(host, package):
    assert host.package(package).is_installed


@pytest.mark.parametrize(
    "cert", sorted(os.path.basename(p) for p in glob.glob("/usr/local/share/ca-certificates/*.crt"))
)
def test_extra_ca_certificate_trusted(host, cert):
    # update-ca-certificates links each extra certificate into /etc/ssl/certs.
    assert host.file(f"/usr/local/share/ca-certificates/{cert}").exists
    assert host.run(f"grep -l 'BEGIN CERT' /etc/ssl/certs/{cert[:-4]}.pem").rc == 0


def test_time_zone(host):
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Europe/Berlin"
    assert host.run("date +%Z").stdout.strip() in ("CET", "CEST")


def test_journal_is_persistent(host):
    assert "Storage=persistent" in host.file("/etc/systemd/journald.conf.d/pyfleet.conf").content_string
    assert host.file("/var/log/journal").is_directory


def test_sshd_refuses_passwords(host):
    config = host.run("sshd -T").stdout.lower()
    assert "passwordauthentication no" in config
    assert "permitrootlogin without-password" in config or "permitrootlogin prohibit-password" in config


def test_sshd_running(host):
    assert host.service("ssh").is_running
