"""How the lab is reached: as deploy with sudo (root refused), host keys checked against the lab's known_hosts."""

import subprocess

import pytest
from test_commands import assert_one_line_error, fab

from pyfleet import inventory, lab as labmod
from pyfleet.podman import podman


@pytest.fixture(scope="module")
def the_lab(inv):
    return labmod.Lab(inv)


def _ssh(the_lab, user, ip, command):
    return subprocess.run(
        ["ssh", *labmod.ssh_options(the_lab), "-o", "BatchMode=yes", "-i", the_lab.key, f"{user}@{ip}", command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_each_lab_host_has_host_keys_of_its_own(the_lab, lab):
    entries = labmod.read_known_hosts(the_lab)
    assert {h: ip for h, (ip, _) in entries.items()} == lab["addresses"]
    keys = [key for _, host_keys in entries.values() for key in host_keys]
    assert len(keys) == len(set(keys)) and len(keys) >= len(entries), "lab hosts share host keys"


def test_the_lab_logs_in_as_deploy_with_sudo_and_refuses_root(the_lab, lab, lab_host):
    ip = lab["addresses"]["web1"]
    as_deploy = _ssh(the_lab, "deploy", ip, "id -un; sudo -n id -un")
    assert as_deploy.returncode == 0 and as_deploy.stdout.split() == ["deploy", "root"], as_deploy.stderr
    as_root = _ssh(the_lab, "root", ip, "true")
    assert as_root.returncode == 255 and "Permission denied" in as_root.stderr, as_root.stderr
    # fab lab.ssh with a command after `--` runs it there, as deploy.
    code, out, err = fab("lab.ssh", "web1", "--", "hostname; id -un; sudo -n id -un")
    assert code == 0 and out.split() == ["web1", "deploy", "root"], err
    sudoers = lab_host("web1").file(labmod.SUDOERS_FILE)
    assert (sudoers.user, sudoers.mode) == ("root", 0o440)
    assert "PermitRootLogin no" in lab_host("web1").file("/etc/ssh/sshd_config.d/pyfleet.conf").content_string


def test_a_host_key_that_does_not_match_the_lab_known_hosts_is_refused(the_lab, lab):
    """web1's lines carry web2's keys: fab status (Fabric), fab lab.ssh and ssh with the lab's options refuse web1."""
    saved = the_lab.known_hosts.read_text()
    entries = labmod.read_known_hosts(the_lab)
    entries["web1"] = (entries["web1"][0], entries["web2"][1])
    try:
        labmod.write_known_hosts(the_lab, entries)
        code, _, err = fab("status", "--limit", "web1")
        assert_one_line_error(code, err)
        assert f"host web1 ({lab['addresses']['web1']}): its SSH host key does not match the lab's known_hosts" in err
        assert "fab lab.up reads the lab hosts' keys again" in err
        code, _, err = fab("lab.ssh", "web1")
        assert_one_line_error(code, err)
        assert "host web1 (" in err and "does not match the lab's known_hosts" in err
        ssh = _ssh(the_lab, "deploy", lab["addresses"]["web1"], "true")  # as Ansible and testinfra run it
        assert ssh.returncode == 255 and "Host key verification failed" in ssh.stderr, ssh.stderr
    finally:
        the_lab.known_hosts.write_text(saved)
    assert fab("status", "--limit", "web1")[0] == 0


def test_a_host_with_new_keys_is_refused_until_lab_up_reads_them(the_lab, lab):
    """web1 makes new host keys (as a host created anew does): refused, then `lab.up` replaces its lines."""
    before = labmod.read_known_hosts(the_lab)
    container = the_lab.container("web1")
    try:
        podman("exec", container, "sh", "-c", "rm -f /etc/ssh/ssh_host_* && systemctl restart ssh")
        code, _, err = fab("status", "--limit", "web1")
        assert_one_line_error(code, err)
        assert "host web1 (" in err and "does not match the lab's known_hosts" in err
    finally:
        labmod.up(inventory.load(the_lab.inventory.path, with_connection=False), log=lambda _: None)
    after = labmod.read_known_hosts(the_lab)
    assert after["web1"][0] == before["web1"][0] and set(after["web1"][1]).isdisjoint(before["web1"][1])
    assert {h: e for h, e in after.items() if h != "web1"} == {h: e for h, e in before.items() if h != "web1"}
    assert fab("status", "--limit", "web1")[0] == 0
