"""TLS and SSH on the lab as outside scanners see them.

sslyze checks the load balancer's HTTPS for every app domain and Flower's against
Mozilla's "intermediate" profile (the copy sslyze bundles); ssh-audit checks the
sshd of every host. Each scanner runs once per session over all its targets at
once (sslyze's scanner takes every server side by side, ssh-audit runs as one
process per host in parallel); the tests read the results.

The lab's certificate is self-signed: sslyze is given the load balancer's own
certificate file, read over SSH (not from the handshake), as an extra trust store.
So path validation really runs - with the name, the dates and the extensions a
verifier checks - and a certificate other than the one the role installed fails.
Nothing else of the profile is relaxed.
"""

import json
import socket
import ssl
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sslyze import (
    CertificateInfoExtraArgument,
    ScanCommand,
    ScanCommandsExtraArguments,
    Scanner,
    ServerNetworkLocation,
    ServerScanRequest,
)
from sslyze.mozilla_tls_profile.tls_config_checker import (
    SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    MozillaTlsConfiguration,
    ServerNotCompliantWithTlsConfiguration,
    ServerScanResultIncomplete,
    TlsConfigurationEnum,
    check_server_against_tls_configuration,
)

from pyfleet import lab as labmod

# Trust store files sslyze bundles carry one certificate that recent cryptography warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")

CERTIFICATE = "/etc/nginx/pyfleet/tls/pyfleet.crt"  # roles/loadbalancer/vars/main.yml
SSH_AUDIT = str(Path(sys.executable).with_name("ssh-audit"))
# ssh-audit's exit codes (ssh_audit/exitcodes.py): 0 nothing found, 2 warnings only, 3 a failure.
SSH_AUDIT_GOOD, SSH_AUDIT_WARNING = 0, 2
TIMEOUT = 15


# ---- the scans, usable against any address (the molecule scenarios' hosts too) ----


def scan_tls(address, domains, ca_file, port=443):
    """sslyze on ``address`` once per domain (as SNI and Host); {domain: (scan result, {deviation: text})}.

    Runs the scan commands Mozilla's check needs, plus the HTTP headers (HSTS).
    """
    profile = MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
    extra = ScanCommandsExtraArguments(certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(ca_file)))
    scanner = Scanner()
    scanner.queue_scans(
        [
            ServerScanRequest(
                server_location=ServerNetworkLocation(hostname=domain, port=port, ip_address=address),
                scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER | {ScanCommand.HTTP_HEADERS},
                scan_commands_extra_arguments=extra,
            )
            for domain in domains
        ]
    )
    results = {}
    for result in scanner.get_results():
        try:
            check_server_against_tls_configuration(result, profile)
            deviations = {}
        except ServerNotCompliantWithTlsConfiguration as exc:
            deviations = exc.issues
        except ServerScanResultIncomplete as exc:
            deviations = {"scan_incomplete": f"{exc} ({result.connectivity_error_trace})"}
        results[result.server_location.hostname] = (result, deviations)
    return results


def hsts(result):
    """The Strict-Transport-Security header sslyze parsed (None: absent or no HTTP answer)."""
    attempt = result.scan_result.http_headers if result.scan_result else None
    return attempt.result.strict_transport_security_header if attempt and attempt.result else None


def alpn(address, server_name, offered=("h2", "http/1.1"), port=443):
    """The application protocol the server picks on a TLS handshake with ``server_name``."""
    context = ssl._create_unverified_context()  # ALPN only: sslyze checks the certificate
    context.set_alpn_protocols(list(offered))
    with (
        socket.create_connection((address, port), timeout=TIMEOUT) as sock,
        context.wrap_socket(sock, server_hostname=server_name) as tls,
    ):
        return tls.selected_alpn_protocol()


def audit_ssh(addresses):
    """ssh-audit on each address in parallel; {address: (exit code, JSON report text, stderr)}.

    Without its connection rate test (the DHEat probe opens dozens of connections
    per host and only ever adds an informational note).
    """

    def one(address):
        done = subprocess.run(
            [SSH_AUDIT, "--json", "--skip-rate-test", "--timeout", str(TIMEOUT), address],
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 4,
            check=False,
        )
        return address, (done.returncode, done.stdout, done.stderr)

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(addresses)))) as pool:
        return dict(pool.map(one, addresses))


def ssh_failures(report):
    """Every failure-level finding of one ssh-audit JSON report, as 'kind name: note'."""
    found = [
        f"{kind} {entry['algorithm']}: {note}"
        for kind in ("kex", "key", "enc", "mac")
        for entry in report.get(kind, [])
        for note in entry.get("notes", {}).get("fail", [])
    ]
    # {"critical": {action: {kind: [{"name": ..., "notes": ...}]}}}: changes that would remove a failure.
    for action, kinds in report.get("recommendations", {}).get("critical", {}).items():
        found += [f"{kind} {change['name']}: to {action}" for kind, changes in kinds.items() for change in changes]
    return found


def password_login(address, ssh_options, user="root"):
    """(exit code, stderr) of an OpenSSH login that offers only a password (never typed: BatchMode)."""
    done = subprocess.run(
        [
            "ssh",
            *ssh_options,
            "-o",
            "BatchMode=yes",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            f"{user}@{address}",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
        check=False,
    )
    return done.returncode, done.stderr


# ---- the lab -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_scan(inv, lb_address, lb_domains, host_run, tmp_path_factory):
    """sslyze's results for every domain, against the load balancer's own certificate as trust store."""
    lb = sorted(inv.groups["loadbalancers"])[0]
    pem = host_run(lb, f"cat {CERTIFICATE}")
    assert pem.rc == 0 and "BEGIN CERTIFICATE" in pem.stdout, pem.stderr
    ca_file = tmp_path_factory.mktemp("tls") / "lb.crt"
    ca_file.write_text(pem.stdout)
    return scan_tls(lb_address, lb_domains, ca_file)


@pytest.fixture(scope="session")
def ssh_audit(lab):
    """ssh-audit's results for every lab host: {host: (exit code, JSON text, stderr)}."""
    addresses = lab["addresses"]
    by_address = audit_ssh(sorted(set(addresses.values())))
    return {host: by_address[address] for host, address in addresses.items()}


def test_tls_has_no_deviation_from_mozilla_intermediate(tls_scan, lb_domains):
    assert sorted(tls_scan) == sorted(lb_domains)
    assert {domain: deviations for domain, (_, deviations) in tls_scan.items() if deviations} == {}


def test_tls_certificate_validates_against_the_installed_one(tls_scan):
    # Name, dates and extensions, with the role's certificate file as the trust anchor.
    untrusted = {}
    for domain, (result, _) in tls_scan.items():
        for deployment in result.scan_result.certificate_info.result.certificate_deployments:
            supplied = [r for r in deployment.path_validation_results if r.trust_store.name == "Supplied CA file"]
            if not (supplied and supplied[0].was_validation_successful):
                untrusted[domain] = supplied[0].validation_error if supplied else "no supplied trust store"
    assert not untrusted, untrusted


def test_tls_sends_hsts(tls_scan):
    headers = {domain: hsts(result) for domain, (result, _) in tls_scan.items()}
    assert all(h is not None for h in headers.values()), headers
    # A year at least: what browsers' HSTS preload list asks (the role's default).
    assert all(h.max_age and h.max_age >= 31536000 for h in headers.values()), headers


def test_tls_offers_http2(lb_address, lb_domains):
    chosen = {domain: alpn(lb_address, domain) for domain in lb_domains}
    assert set(chosen.values()) == {"h2"}, chosen


@pytest.mark.parametrize("server_name", ["unknown.invalid", None], ids=["unknown-name", "no-name"])
def test_tls_refuses_a_name_it_does_not_serve(lb_address, server_name):
    with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
        alpn(lb_address, server_name)


def test_ssh_audit_finds_no_failure_on_any_host(ssh_audit):
    problems = {}
    for host, (code, out, err) in sorted(ssh_audit.items()):
        if code not in (SSH_AUDIT_GOOD, SSH_AUDIT_WARNING):
            problems[host] = f"exit code {code}: {(err or out)[-500:]}"
            continue
        failures = ssh_failures(json.loads(out))
        if failures:
            problems[host] = failures
    assert not problems, problems


def test_ssh_refuses_passwords_on_every_host(lab, inv):
    options = labmod.ssh_options(labmod.Lab(inv))
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = dict(
            zip(
                lab["addresses"], pool.map(lambda a: password_login(a, options), lab["addresses"].values()), strict=True
            )
        )
    # sshd names the methods it still accepts: publickey alone.
    refused = {host: code == 255 and "Permission denied (publickey)" in err for host, (code, err) in answers.items()}
    assert all(refused.values()), answers


def test_ssh_key_login_still_works_on_every_host(host_run, lab):
    assert {host: host_run(host, "true").rc for host in lab["addresses"]} == dict.fromkeys(lab["addresses"], 0)
