"""The common role's safety settings: SSH logins and algorithms, journald, trusted CAs.

Templates are rendered with Ansible's templating (tests/unit/rendering.py); the trust
tasks are read as Ansible reads them and their templated loop is resolved.
"""

import subprocess
from pathlib import Path

import yaml
from rendering import ROOT, render, role_value, role_vars

# What `ssh -Q` answers on a host whose OpenSSH knows no ML-KEM and no umac.
SSH_Q = {
    "stdout_lines": [
        "kex sntrup761x25519-sha512 sntrup761x25519-sha512@openssh.com curve25519-sha256 "
        "curve25519-sha256@libssh.org diffie-hellman-group1-sha1",
        "cipher chacha20-poly1305@openssh.com aes256-gcm@openssh.com aes128-gcm@openssh.com "
        "aes256-ctr aes192-ctr aes128-ctr 3des-cbc",
        "mac hmac-sha2-512-etm@openssh.com hmac-sha2-256-etm@openssh.com hmac-sha1",
        "HostKeyAlgorithms ssh-ed25519 ssh-ed25519-cert-v01@openssh.com rsa-sha2-512 rsa-sha2-256 ssh-rsa "
        "rsa-sha2-512-cert-v01@openssh.com rsa-sha2-256-cert-v01@openssh.com",
    ]
}


def sshd(**variables):
    text = render(
        "common", "etc/ssh/sshd_config.d/pyfleet.conf.j2", "web1", common__register_ssh_algorithms=SSH_Q, **variables
    )
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, []).append(value)
    return out


def test_the_keys_the_same_command_created_do_not_change_the_algorithms():
    created = {"stdout_lines": [*SSH_Q["stdout_lines"], "created /etc/ssh/ssh_host_ed25519_key"]}
    text = render("common", "etc/ssh/sshd_config.d/pyfleet.conf.j2", "web1", common__register_ssh_algorithms=created)
    assert text == render(
        "common", "etc/ssh/sshd_config.d/pyfleet.conf.j2", "web1", common__register_ssh_algorithms=SSH_Q
    )
    assert "KexAlgorithms sntrup761x25519-sha512" in text


def test_sshd_allows_keys_only():
    conf = sshd()
    assert conf["AuthenticationMethods"] == ["publickey"]
    assert conf["PasswordAuthentication"] == ["no"]
    assert conf["KbdInteractiveAuthentication"] == ["no"]
    assert conf["PermitEmptyPasswords"] == ["no"]
    assert conf["PermitRootLogin"] == ["prohibit-password"]
    assert conf["MaxAuthTries"] == ["3"]
    assert conf["X11Forwarding"] == ["no"]
    assert conf["AllowAgentForwarding"] == ["no"]
    assert conf["ClientAliveInterval"] == ["300"]
    assert sshd(common_sshd_permit_root_login="no")["PermitRootLogin"] == ["no"]


def test_sshd_offers_only_strong_algorithms_the_host_knows():
    conf = sshd()
    assert conf["HostKey"] == ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"]
    # In pyfleet's order of preference; names this OpenSSH lacks are left out, weak ones it has are not added.
    assert conf["KexAlgorithms"] == [
        "sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org"
    ]
    assert conf["Ciphers"] == [
        "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr"
    ]
    assert conf["MACs"] == ["hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com"]
    assert conf["HostKeyAlgorithms"] == [
        "ssh-ed25519-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,"
        "ssh-ed25519,rsa-sha2-512,rsa-sha2-256"
    ]


def test_journald_keeps_the_logs():
    text = render("common", "etc/systemd/journald.conf.d/pyfleet.conf.j2", "web1")
    assert "[Journal]" in text.splitlines()
    assert "Storage=persistent" in text.splitlines()
    assert "SystemMaxUse=200M" in text.splitlines()
    volatile = render("common", "etc/systemd/journald.conf.d/pyfleet.conf.j2", "web1", common_journald_persistent=False)
    assert "Storage=volatile" in volatile.splitlines()


def tasks(path):
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


def ca_certificates(tmp_path, **variables):
    """``__common_ca_certificates`` (the trust task's loop) resolved as Ansible does."""
    return role_value("common", "__common_ca_certificates", **variables)


def test_extra_ca_certificates_are_the_listed_files_and_the_directorys(tmp_path):
    (tmp_path / "corp-root.crt").write_text("x", encoding="utf-8")
    (tmp_path / "readme.txt").write_text("x", encoding="utf-8")
    found = ca_certificates(
        tmp_path, common_extra_ca_certificates=["files/lab-ca.crt"], common_extra_ca_certificates_dir=str(tmp_path)
    )
    assert found == ["files/lab-ca.crt", str(tmp_path / "corp-root.crt")]
    assert ca_certificates(tmp_path) == []


def test_trust_installs_each_ca_where_update_ca_certificates_reads_and_runs_it(tmp_path):
    (install, *_rest) = tasks("roles/common/tasks/trust.yml")
    assert install["pyfleet_paths"] == {"paths": "{{ __common_ca_files }}"}
    assert install["when"] == "__common_ca_certificates | length > 0"
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    (tmp_path / "corp-root.crt").write_text(pem, encoding="utf-8")
    # update-ca-certificates takes *.crt from this directory into /etc/ssl/certs; the
    # file's text as it is (the lookup keeps the last newline).
    assert role_value("common", "__common_ca_files", common_extra_ca_certificates_dir=str(tmp_path)) == [
        {
            "path": "/usr/local/share/ca-certificates/corp-root.crt",
            "state": "file",
            "content": pem,
            "owner": "root",
            "group": "root",
            "mode": "0644",
        }
    ]
    handlers = {h["name"]: h for h in tasks("roles/common/handlers/main.yml")}
    assert handlers[install["notify"]] == {
        "name": "Update the CA certificate store",
        "ansible.builtin.command": "update-ca-certificates",
        "changed_when": True,
    }
    main = tasks("roles/common/tasks/main.yml")
    assert any(t.get("ansible.builtin.import_tasks") == "trust.yml" for t in main)


def _common_paths(**variables):
    """What the common role's one file task makes of each path, for these variables."""
    return {item["path"]: item for item in role_value("common", "__common_paths", **variables)}


def test_apt_proxy_file_only_with_a_proxy_and_before_apt_runs():
    write, install, *_rest = tasks("roles/common/tasks/main.yml")
    # A new host behind a proxy gets its packages through it on the first converge.
    assert install["name"] == "Install the base packages" and "pyfleet_packages" in install
    assert write["when"] == "common_http_proxy | length > 0"
    assert write["ansible.builtin.template"] == {
        "src": "etc/apt/apt.conf.d/80pyfleet-proxy.j2",
        "dest": "/etc/apt/apt.conf.d/80pyfleet-proxy",
        "owner": "root",
        "group": "root",
        "mode": "0644",
    }
    # Without a proxy the file task removes it; with one it leaves the template's file alone.
    proxy_file = write["ansible.builtin.template"]["dest"]
    assert _common_paths(common_http_proxy="")[proxy_file]["state"] == "absent"
    assert proxy_file not in _common_paths(common_http_proxy="http://proxy.test:3128")
    text = render("common", "etc/apt/apt.conf.d/80pyfleet-proxy.j2", "web1", common_http_proxy="http://proxy.test:3128")
    assert "http://proxy.test:3128" in text


def test_time_zone_locale_and_persistent_journal_directory():
    paths = _common_paths(common_timezone="Europe/Berlin", common_locale="de_DE.UTF-8", common_journald_persistent=True)
    assert paths["/etc/localtime"] == {
        "path": "/etc/localtime",
        "state": "link",
        "src": "/usr/share/zoneinfo/Europe/Berlin",
    }
    # Whole lines: a file without its last newline is one tools misread.
    assert paths["/etc/timezone"]["content"] == "Europe/Berlin\n"
    assert paths["/etc/default/locale"]["content"] == "LANG=de_DE.UTF-8\n"
    assert {paths[p]["mode"] for p in ("/etc/timezone", "/etc/default/locale")} == {"0644"}
    assert paths["/var/log/journal"]["state"] == "directory"
    assert (paths["/var/log/journal"]["group"], paths["/var/log/journal"]["mode"]) == ("systemd-journal", "2755")
    assert _common_paths(common_journald_persistent=False)["/var/log/journal"]["state"] == "absent"
    main = {t["name"]: t for t in tasks("roles/common/tasks/main.yml")}
    task = main["Set the time zone and the locale, create the journal directories, remove an unused apt proxy setting"]
    assert task["pyfleet_paths"] == {"paths": "{{ __common_paths }}"}


def test_host_keys_of_the_types_not_offered_are_removed_both_halves():
    stale = role_value("common", "__common_sshd_stale_host_keys", common_sshd_host_key_types=["ed25519", "rsa"])
    # In name order whatever the hash seed (`difference` is a set operation): the same
    # list, and the same diff, at every run.
    assert stale == [
        {"path": f"/etc/ssh/ssh_host_{kind}_key{suffix}", "state": "absent"}
        for kind in ("dsa", "ecdsa")
        for suffix in ("", ".pub")
    ]
    remove = next(t for t in tasks("roles/common/tasks/services.yml") if t["name"].startswith("Remove the host keys"))
    assert remove["pyfleet_paths"] == {"paths": "{{ __common_sshd_stale_host_keys }}"}
    assert remove["notify"] == "Reload sshd"


def test_sshd_drop_in_is_validated_before_it_is_written():
    configure = next(t for t in tasks("roles/common/tasks/services.yml") if t["name"] == "Configure sshd")
    template = configure["ansible.builtin.template"]
    assert template["validate"] == "/usr/sbin/sshd -t -f %s"
    assert template["dest"] == "/etc/ssh/sshd_config.d/pyfleet.conf"
    assert configure["notify"] == "Reload sshd"
    assert Path(ROOT / "roles/common/templates" / template["src"]).exists()


def test_handlers_restart_journald_and_reload_sshd():
    handlers = {h["name"]: h for h in tasks("roles/common/handlers/main.yml")}
    assert handlers["Restart journald"]["ansible.builtin.systemd_service"] == {
        "name": "systemd-journald",
        "state": "restarted",
    }
    # Reload, not restart: open sessions (the deploy's own) survive a change.
    assert handlers["Reload sshd"]["ansible.builtin.systemd_service"] == {"name": "ssh", "state": "reloaded"}


def test_keygen_creates_only_the_missing_host_keys_and_in_check_mode_only_names_them(tmp_path):
    script = str(role_vars("common")["__common_sshd_keygen"])
    task = next(t for t in tasks("roles/common/tasks/services.yml") if "create the missing sshd host keys" in t["name"])
    assert task["ansible.builtin.command"]["argv"][:4] == ["/bin/sh", "-c", "{{ __common_sshd_keygen }}", "keygen"]
    assert task["notify"] == "Reload sshd" and task["check_mode"] is False

    def keygen(check, types):
        run = subprocess.run(
            ["/bin/sh", "-c", script, "keygen", check, types, str(tmp_path)], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        # First what ssh -Q knows (the sshd template's __common_sshd_known), then the keys made.
        assert [line.split()[0] for line in lines[:4]] == ["kex", "cipher", "mac", "HostKeyAlgorithms"], lines
        assert "curve25519-sha256" in lines[0].split()
        return [line.removeprefix("created ") for line in lines[4:]]

    (tmp_path / "ssh_host_ed25519_key").write_text("kept")
    assert keygen("True", "ed25519 rsa") == [str(tmp_path / "ssh_host_rsa_key")]
    assert not (tmp_path / "ssh_host_rsa_key").exists()
    assert keygen("False", "ed25519 rsa") == [str(tmp_path / "ssh_host_rsa_key")]
    public = (tmp_path / "ssh_host_rsa_key.pub").read_text().split()
    assert public[0] == "ssh-rsa" and len(public) == 2  # no comment
    bits = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(tmp_path / "ssh_host_rsa_key.pub")], capture_output=True, text=True
    )
    assert bits.stdout.split()[0] == "3072"
    assert (tmp_path / "ssh_host_ed25519_key").read_text() == "kept"
    assert keygen("False", "ed25519 rsa") == []
