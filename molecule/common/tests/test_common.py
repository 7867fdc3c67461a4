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


TEST_CA = os.path.join(os.path.dirname(__file__), "..", "files", "pyfleet-molecule-test-ca.crt")


def test_the_roles_own_ca_certificate_is_trusted(host):
    # A certificate made for this scenario: only the role's trust task can have put it
    # there, and only its handler (update-ca-certificates) into the trust store.
    with open(TEST_CA, encoding="ascii") as handle:
        pem = handle.read()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    installed = host.file("/usr/local/share/ca-certificates/pyfleet-molecule-test-ca.crt")
    assert installed.content_string == pem
    assert (installed.user, installed.group, installed.mode) == ("root", "root", 0o644)
    assert host.file("/etc/ssl/certs/pyfleet-molecule-test-ca.pem").is_symlink
    bundle = "".join(host.file("/etc/ssl/certs/ca-certificates.crt").content_string.split())
    assert body in bundle


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


def test_sshd_uses_the_chosen_algorithms_and_host_keys(host):
    config = host.run("sshd -T").stdout.lower()
    assert "authenticationmethods publickey" in config
    kex = next(line.split()[1] for line in config.splitlines() if line.startswith("kexalgorithms "))
    # A post-quantum hybrid first (ML-KEM only on OpenSSH 9.9+), and the one paramiko (fab) has.
    assert kex.split(",")[0] in ("mlkem768x25519-sha256", "sntrup761x25519-sha512")
    assert "curve25519-sha256@libssh.org" in kex.split(",")
    assert "ecdh-sha2-nistp" not in config
    assert "hmac-sha1" not in config
    assert {line.split()[1] for line in config.splitlines() if line.startswith("hostkey ")} == {
        "/etc/ssh/ssh_host_ed25519_key",
        "/etc/ssh/ssh_host_rsa_key",
    }
    assert not host.file("/etc/ssh/ssh_host_ecdsa_key").exists


def test_sshd_running(host):
    assert host.service("ssh").is_running
