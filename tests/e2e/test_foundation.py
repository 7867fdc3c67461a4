"""The foundation: six real lab hosts, converged by site.yml, idempotent."""

import pytest

from pyfleet import ansible, template_cache
from pyfleet.lab import LAB_USER

LAB_HOSTS = ["lb1", "web1", "web2", "broker1", "worker1", "worker2"]


def test_lab_has_the_six_default_hosts(inv, lab):
    assert sorted(lab["addresses"]) == sorted(LAB_HOSTS)
    assert inv.groups["web"] == ["web1", "web2"]


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_host_runs_systemd_and_answers_as_itself(lab_host, name):
    host = lab_host(name)
    assert host.run("hostname").stdout.strip() == name
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state in ("running", "degraded"), state
    assert host.service("ssh").is_running


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_common_role_applied(lab_host, name):
    host = lab_host(name)
    assert "PasswordAuthentication no" in host.file("/etc/ssh/sshd_config.d/pyfleet.conf").content_string
    assert host.file("/var/log/journal").is_directory
    assert host.package("acl").is_installed


@pytest.mark.parametrize("name", LAB_HOSTS)
def test_hosts_trust_the_controller_ca_for_outbound_tls(lab_host, name):
    # Outbound TLS here goes through an intercepting proxy; pip on the hosts
    # works only when its CA is trusted. A real TLS handshake proves it.
    import glob

    certs = glob.glob("/usr/local/share/ca-certificates/*.crt")
    if not certs:
        pytest.skip("this controller has no extra CA certificates")
    host = lab_host(name)
    for cert in certs:
        name_ = cert.rsplit("/", 1)[-1][:-4]
        assert host.file(f"/etc/ssl/certs/{name_}.pem").exists


def test_hosts_reach_each_other_by_address(lab, host_run):
    web2 = lab["addresses"]["web2"]
    assert host_run("web1", f"timeout 3 bash -c '</dev/tcp/{web2}/22'").rc == 0


CODE_CACHES = f"~root/.cache/pyfleet ~{LAB_USER}/.cache/pyfleet"  # sudo's interpreter, the SSH user's


def test_second_converge_changes_nothing(run_playbook, host_run):
    for name in LAB_HOSTS:
        host_run(name, "touch /run/pyfleet-before-no-op")
    stats = run_playbook("site")
    assert sorted(stats) == sorted(LAB_HOSTS)
    assert ansible.total_changed(stats) == 0, stats
    # Both Mitogen interpreters on each host read the modules they were sent
    # from their compile cache (pyfleet.remote_code_cache): none compiled again.
    for name in LAB_HOSTS:
        kept = host_run(name, f"find {CODE_CACHES} -type f ! -newer /run/pyfleet-before-no-op | wc -l")
        new = host_run(name, f"find {CODE_CACHES} -type f -newer /run/pyfleet-before-no-op")
        assert int(kept.stdout) > 100, (name, kept.stdout, kept.stderr)
        assert new.stdout == "", f"{name} compiled again: {new.stdout}"
    # The controller keeps its compiled templates and conditions too (pyfleet.template_cache;
    # whether none was compiled again is not asked here: molecule converges beside this suite).
    assert len(list(template_cache.DIRECTORY.iterdir())) > 100, template_cache.DIRECTORY


@pytest.mark.last(order=9)
def test_no_unit_is_failed_on_any_lab_host_after_every_test(lab, host_run):
    """Deploys, rollbacks, restarts and killed processes leave no failed unit behind."""
    failed = {}
    for name in sorted(lab["addresses"]):
        out = host_run(name, "systemctl --failed --no-legend --plain").stdout.strip()
        if out:
            failed[name] = out
    assert not failed, failed


SERVICE_CHECK = """
- hosts: web1
  gather_facts: false
  tasks:
    - name: A converged unit - read, not changed
      pyfleet_service: {name: nginx, state: started, enabled: true}
      register: converged
    - name: A disabled unit - systemd_service decides (check mode changes nothing)
      pyfleet_service: {name: systemd-networkd, enabled: true}
      check_mode: true
      register: disabled
    - name: Check what each did
      ansible.builtin.assert:
        that:
          - converged.checked_only and converged is not changed
          - converged.status.ActiveState == 'active'
          - not disabled.checked_only and disabled is changed
"""


def test_a_converged_unit_costs_one_systemctl_show_and_a_change_goes_to_systemd_service(inv, lab, tmp_path, host_run):
    playbook = tmp_path / "service-check.yml"
    playbook.write_text(SERVICE_CHECK)
    ansible.playbook(inv.path, playbook, quiet=True)  # an assert that fails raises here
    assert host_run("web1", "systemctl is-enabled systemd-networkd").stdout.strip() == "disabled"


ACCOUNTS_CHECK = """
- hosts: web1
  gather_facts: false
  vars:
    accounts:
      groups: [{name: pyfleet-e2e, system: true}]
      users:
        - {name: pyfleet-e2e, group: pyfleet-e2e, system: true, shell: /usr/sbin/nologin, home: /nonexistent,
           create_home: false}
        - {name: www-data, groups: [pyfleet-e2e], append: true}
  tasks:
    - name: New accounts - the group and user modules create them
      pyfleet_accounts: {groups: "{{ accounts.groups }}", users: "{{ accounts.users }}"}
      register: created
    - name: The same again - read with getent, nothing run
      pyfleet_accounts: {groups: "{{ accounts.groups }}", users: "{{ accounts.users }}"}
      register: again
    - name: Another shell asked - the user module decides (check mode changes nothing)
      pyfleet_accounts:
        users: [{name: pyfleet-e2e, shell: /bin/sh}]
      check_mode: true
      register: other_shell
    - name: Remove the test accounts
      ansible.builtin.user: {name: pyfleet-e2e, state: absent}
    - name: Remove the test group
      ansible.builtin.group: {name: pyfleet-e2e, state: absent}
    - name: Check what each did
      ansible.builtin.assert:
        that:
          - created is changed and not created.checked_only and created.results | length == 3
          - again is not changed and again.checked_only and again.results == []
          - other_shell is changed and not other_shell.checked_only
"""


def test_settled_accounts_cost_one_getent_and_a_difference_goes_to_the_user_module(inv, lab, tmp_path, host_run):
    playbook = tmp_path / "accounts-check.yml"
    playbook.write_text(ACCOUNTS_CHECK)
    ansible.playbook(inv.path, playbook, quiet=True)  # an assert that fails raises here
    assert host_run("web1", "getent passwd pyfleet-e2e; getent group pyfleet-e2e").stdout == ""
