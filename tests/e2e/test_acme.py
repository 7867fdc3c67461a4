"""loadbalancer_tls_mode: acme against a real ACME server: Debian's Pebble on the load balancer.

The module's fixture installs Debian's `pebble` package on the lab's load balancer
(with the package lists the base image carries: about 3 s; `apt-get update` only if
the archive moved on since) and runs, as transient systemd units that go away when
stopped:

- `pebble-challtestsrv` as Pebble's DNS only (127.0.0.1:8053): every name resolves
  to the load balancer's lab address, so Pebble's HTTP-01 requests go to its nginx
  on port 80, as a real CA's would; a test points one name elsewhere;
- `pebble` (ACME directory https://localhost:14000/dir, management on 15000), with
  no artificial sleeps, no nonce rejection and no reuse of valid authorizations, so
  every order is validated over HTTP for real. Its listener certificate comes from a
  CA made here, which the role trusts through loadbalancer_acme_ca_certificate.

The tests converge playbooks/loadbalancers.yml (the load balancer play of site.yml)
with the ACME variables, check the served certificate for every domain by a TLS
handshake that verifies it against Pebble's root (fetched from its management port:
Pebble makes a new CA at every start) and the name, force a renewal under load, and
try the bad inputs. At the end the load balancer goes back to its self-signed
certificate, Pebble and its package are removed: the lab is as it was.
"""

import json
import socket
import ssl
import subprocess
import time

import pytest

from pyfleet import ansible
from pyfleet.errors import PyfleetError
from pyfleet.load import Load

DIRECTORY = "https://localhost:14000/dir"
PEBBLE_DIR = "/etc/pyfleet-lab-pebble"
UNITS = ("pyfleet-lab-pebble", "pyfleet-lab-pebble-dns")
WRONG_NAME = "hello-async.lab.test"
TIMEOUT = 15

PEBBLE_SETUP = f"""set -e
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends pebble >/dev/null 2>&1 \\
  || {{ apt-get update -qq && apt-get install -y -qq --no-install-recommends pebble >/dev/null; }}
mkdir -p {PEBBLE_DIR} && cd {PEBBLE_DIR} && umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=pyfleet lab Pebble listener CA" \\
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout listener.key -out listener.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > listener.ext
openssl x509 -req -in listener.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile listener.ext \\
  -out listener.crt 2>/dev/null
cat > config.json <<'EOF'
{
    json.dumps(
        {
            "pebble": {
                "listenAddress": "127.0.0.1:14000",
                "managementListenAddress": "127.0.0.1:15000",
                "certificate": f"{PEBBLE_DIR}/listener.crt",
                "privateKey": f"{PEBBLE_DIR}/listener.key",
                "httpPort": 80,
                "tlsPort": 5001,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
    )
}
EOF
"""


def start_pebble(lb_ip):
    # A unit left by an interrupted run would make systemd-run refuse the name.
    return (
        f"systemctl stop {' '.join(UNITS)} 2>/dev/null; systemctl reset-failed {' '.join(UNITS)} 2>/dev/null; "
        f"systemd-run --quiet --unit={UNITS[1]} /usr/bin/pebble-challtestsrv -defaultIPv4 {lb_ip} -defaultIPv6 '' "
        "-dns01 127.0.0.1:8053 -http01 '' -https01 '' -tlsalpn01 '' -management 127.0.0.1:8055 && "
        f"systemd-run --quiet --unit={UNITS[0]} -E PEBBLE_VA_NOSLEEP=1 -E PEBBLE_WFE_NONCEREJECT=0 "
        f"-E PEBBLE_AUTHZREUSE=0 /usr/bin/pebble -config {PEBBLE_DIR}/config.json -dnsserver 127.0.0.1:8053"
    )


def wait_for(check, seconds, what):
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result.rc == 0:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready after {seconds} s: {result.stderr or result.stdout}")
        time.sleep(0.3)


def served(address, domain, root_pem):
    """The certificate the load balancer serves for ``domain`` (DER), verified against ``root_pem`` and the name."""
    context = ssl.create_default_context(cadata=root_pem)
    with (
        socket.create_connection((address, 443), timeout=TIMEOUT) as sock,
        context.wrap_socket(sock, server_hostname=domain) as tls,
    ):
        return tls.getpeercert(binary_form=True)


@pytest.fixture(scope="module")
def pebble(inv, lab, host_run, lb_address, tmp_path_factory):
    """Pebble on the load balancer; yields {lb, vars file, root PEM, timings}; removes it all at the end."""
    lb = sorted(inv.groups["loadbalancers"])[0]
    lb_ip = lab["addresses"][lb]
    tmp = tmp_path_factory.mktemp("acme")
    try:
        setup = host_run(lb, PEBBLE_SETUP)
        assert setup.rc == 0, setup.stderr
        started = host_run(lb, start_pebble(lb_ip))
        assert started.rc == 0, started.stderr
        wait_for(lambda: host_run(lb, f"curl -sf --cacert {PEBBLE_DIR}/ca.crt {DIRECTORY}"), 20, "Pebble")
        root = wait_for(
            lambda: host_run(lb, f"curl -sf --cacert {PEBBLE_DIR}/ca.crt https://127.0.0.1:15000/roots/0"),
            20,
            "Pebble's root",
        )
        (tmp / "listener-ca.crt").write_text(host_run(lb, f"cat {PEBBLE_DIR}/ca.crt").stdout)
        settings = {
            "loadbalancer_tls_mode": "acme",
            "loadbalancer_acme_directory": DIRECTORY,
            "loadbalancer_acme_terms_agreed": True,
            "loadbalancer_acme_ca_certificate": str(tmp / "listener-ca.crt"),
        }
        yield {"lb": lb, "lb_ip": lb_ip, "root": root.stdout, "settings": settings, "tmp": tmp, "times": {}}
    finally:
        # The lab as it was: the self-signed certificate (the role also forgets the
        # directory's CA), no Pebble.
        try:
            ansible.playbook(inv.path, "loadbalancers", quiet=True)
        finally:
            host_run(lb, f"systemctl stop {' '.join(UNITS)}; systemctl reset-failed {' '.join(UNITS)}")
            host_run(lb, f"rm -rf {PEBBLE_DIR}; DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq pebble")


def converge(inv, pebble, **extra):
    """playbooks/loadbalancers.yml with the ACME settings (and ``extra``); returns (stats, seconds)."""
    path = pebble["tmp"] / f"vars-{len(pebble['times'])}-{time.monotonic_ns()}.json"
    path.write_text(json.dumps({**pebble["settings"], **extra}))
    began = time.monotonic()
    stats = ansible.playbook(inv.path, "loadbalancers", "-e", f"@{path}", quiet=True)
    return stats, round(time.monotonic() - began, 1)


@pytest.fixture(scope="module")
def issued(inv, pebble, lb_domains):
    """The first issuance: the self-signed certificate replaced by Pebble's."""
    stats, seconds = converge(inv, pebble)
    pebble["times"]["first issuance"] = seconds
    assert stats[pebble["lb"]]["changed"] > 0, stats
    return {d: served(pebble["lb_ip"], d, pebble["root"]) for d in lb_domains}


def test_the_served_certificate_chains_to_pebble_and_names_every_domain(issued, pebble, lb_domains):
    # served() verified each handshake against Pebble's root with the domain as the name.
    assert sorted(issued) == sorted(lb_domains)
    assert len(set(issued.values())) == 1  # one certificate, every domain in it
    # Against another CA (the one of Pebble's own listener) the same handshake fails: the check is real.
    with pytest.raises(ssl.SSLCertVerificationError):
        served(pebble["lb_ip"], lb_domains[0], (pebble["tmp"] / "listener-ca.crt").read_text())


def test_keys_and_certificates_are_kept_tight(issued, pebble, host_run):
    listing = host_run(
        pebble["lb"],
        "stat -c '%n %a %U' /etc/nginx/pyfleet/tls /etc/nginx/pyfleet/tls/acme-account.key "
        "/etc/nginx/pyfleet/tls/pyfleet.key /etc/nginx/pyfleet/tls/acme-new",
    )
    modes = dict(line.split(" ", 1) for line in listing.stdout.splitlines())
    assert modes == {
        "/etc/nginx/pyfleet/tls": "700 root",
        "/etc/nginx/pyfleet/tls/acme-account.key": "600 root",
        "/etc/nginx/pyfleet/tls/pyfleet.key": "600 root",
        "/etc/nginx/pyfleet/tls/acme-new": "700 root",
    }
    # No HTTP-01 answer is left behind.
    assert host_run(pebble["lb"], "ls -A /var/www/pyfleet-acme/.well-known/acme-challenge").stdout.strip() == ""


def test_a_second_converge_changes_nothing(issued, inv, pebble, lb_domains):
    stats, _ = converge(inv, pebble)
    assert ansible.total_changed(stats) == 0, stats
    assert served(pebble["lb_ip"], lb_domains[0], pebble["root"]) == issued[lb_domains[0]]


def test_a_renewal_is_served_and_drops_no_request(issued, inv, pebble, lb_domains, lb_address):
    # Pebble 2.4.0's certificates last 5 years: a renewal window wider than that puts
    # this one inside it, as the days before its end would.
    with Load(lb_address, {"hello": "hello.lab.test"}, connections=2, max_seconds=120, pause=0.01) as load:
        stats, seconds = converge(inv, pebble, loadbalancer_acme_renew_days=2000)
    pebble["times"]["renewal"] = seconds
    assert stats[pebble["lb"]]["changed"] > 0, stats
    renewed = {d: served(pebble["lb_ip"], d, pebble["root"]) for d in lb_domains}
    assert len(set(renewed.values())) == 1 and set(renewed.values()).isdisjoint(issued.values())
    assert load.report.failed == 0 and load.report.total > 0, load.report.describe()
    issued.update(renewed)  # the certificate the bad inputs below must leave serving
    print(f"ACME times: {pebble['times']}")  # shown with -s; README records them


# Asks Pebble's DNS (pebble-challtestsrv on the load balancer) for a name's A records,
# as Pebble's validation does: one UDP query, the addresses of the answer, one a line.
DNS_QUERY = r"""
import socket, struct, sys
name = sys.argv[1]
query = struct.pack(">HHHHHH", 0x5059, 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(query, ("127.0.0.1", 8053))
answer = s.recv(512)
count = struct.unpack(">H", answer[6:8])[0]
at = len(query)
for _ in range(count):
    at += 2 if answer[at] & 0xC0 == 0xC0 else answer.index(b"\0", at) + 1 - at
    kind, _, _, size = struct.unpack(">HHIH", answer[at : at + 10])
    at += 10
    if kind == 1:
        print(socket.inet_ntoa(answer[at : at + size]))
    at += size
"""


def resolves_to(host_run, lb, name):
    """The addresses Pebble's DNS gives ``name`` now."""
    done = host_run(lb, f"python3 -c '{DNS_QUERY}' {name}")
    assert done.rc == 0, done.stderr
    return done.stdout.split()


def bad_converge(inv, pebble, **extra):
    with pytest.raises(PyfleetError) as caught:
        converge(inv, pebble, **extra)
    return str(caught.value)


def test_an_unreachable_directory_is_one_line_and_the_old_certificate_serves(issued, inv, pebble, lb_domains):
    began = time.monotonic()
    line = bad_converge(inv, pebble, loadbalancer_acme_directory="https://localhost:14001/dir")
    assert "\n" not in line and "Traceback" not in line
    assert (
        f"no new ACME certificate for {', '.join(lb_domains)}: the ACME directory https://localhost:14001/dir "
        "is unreachable (Connection refused); old certificate still served" in line
    ), line
    assert time.monotonic() - began < 60  # asked once, not community.crypto's 20 retries 10 s apart
    assert {d: served(pebble["lb_ip"], d, pebble["root"]) for d in lb_domains} == issued


def test_a_domain_that_leads_elsewhere_is_named_and_the_old_certificate_serves(
    issued, inv, pebble, lb_domains, host_run, lab
):
    # The name resolves to a web host (the DNS record of a moved service), whose nginx answers 404.
    web = lab["addresses"][sorted(inv.groups["web"])[0]]
    record = json.dumps({"host": WRONG_NAME, "addresses": [web]})
    added = host_run(pebble["lb"], f"curl -sf -d '{record}' http://127.0.0.1:8055/add-a")
    assert added.rc == 0, added.stderr
    try:
        # What Pebble will see, before the order: the web host's address only.
        assert resolves_to(host_run, pebble["lb"], WRONG_NAME) == [web]
        began = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        try:
            line = bad_converge(inv, pebble, loadbalancer_acme_force_renewal=True)
        except BaseException:
            # Why Pebble validated the name anyway: its own log of the validation.
            log = host_run(pebble["lb"], f"journalctl --no-pager -o cat --since '{began}' -u {UNITS[0]} -u {UNITS[1]}")
            print("\n".join(line for line in log.stdout.splitlines() if "nonce" not in line)[-4000:])
            raise
    finally:
        host_run(pebble["lb"], f"curl -sf -d '{json.dumps({'host': WRONG_NAME})}' http://127.0.0.1:8055/clear-a")
    assert "\n" not in line
    assert (
        f"no new ACME certificate for {WRONG_NAME}: HTTP-01 failed, the CA did not reach this load balancer" in line
    ), line
    assert "old certificate still served" in line
    assert {d: served(pebble["lb_ip"], d, pebble["root"]) for d in lb_domains} == issued


# A CA front that answers every new order with a rate limit, as Let's Encrypt does
# past its limits: 429, Retry-After and a rateLimited problem document. Pebble has
# no rate limits of its own; everything else (nonces, the account) is Pebble's, so
# community.crypto talks to a real CA up to the order. Retry-After is 1 s here
# (community.crypto retries a 429 20 times, waiting Retry-After, at most 60 s).
RATE_LIMITED_PORT = 14002
RATE_LIMITED_DETAIL = (
    "Error creating new order :: too many certificates (5) already issued for this exact set of "
    "identifiers in the last 168h0m0s, retry after 2026-12-10 10:00:00 UTC"
)
RATE_LIMITED_FRONT = f"""
import http.server, json, ssl, urllib.request
pebble = ssl.create_default_context(cafile="{PEBBLE_DIR}/ca.crt")

class Front(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body, content_type, retry_after=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if retry_after:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        directory = json.load(urllib.request.urlopen("{DIRECTORY}", context=pebble, timeout=10))
        directory["newOrder"] = "https://localhost:{RATE_LIMITED_PORT}/order-plz"
        self.answer(200, directory, "application/json")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        problem = {{"type": "urn:ietf:params:acme:error:rateLimited", "status": 429, "detail": "{RATE_LIMITED_DETAIL}"}}
        self.answer(429, problem, "application/problem+json", retry_after="1")

server = http.server.ThreadingHTTPServer(("127.0.0.1", {RATE_LIMITED_PORT}), Front)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain("{PEBBLE_DIR}/listener.crt", "{PEBBLE_DIR}/listener.key")
server.socket = tls.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def test_a_rate_limit_is_one_line_with_when_to_retry_and_the_old_certificate_serves(
    issued, inv, pebble, lb_domains, host_run
):
    lb = pebble["lb"]
    front = f"{PEBBLE_DIR}/rate-limited-front.py"
    written = host_run(lb, f"cat > {front} <<'EOF'\n{RATE_LIMITED_FRONT}\nEOF\n")
    assert written.rc == 0, written.stderr
    unit = "pyfleet-lab-pebble-rate-limited"
    started = host_run(
        lb, f"systemctl reset-failed {unit} 2>/dev/null; systemd-run --quiet --unit={unit} python3 {front}"
    )
    assert started.rc == 0, started.stderr
    directory = f"https://localhost:{RATE_LIMITED_PORT}/dir"
    try:
        wait_for(
            lambda: host_run(lb, f"curl -sf --cacert {PEBBLE_DIR}/ca.crt {directory}"), 20, "the rate-limited front"
        )
        line = bad_converge(inv, pebble, loadbalancer_acme_directory=directory, loadbalancer_acme_force_renewal=True)
    finally:
        host_run(lb, f"systemctl stop {unit}")
    assert "\n" not in line and "Traceback" not in line
    assert (
        f"no new ACME certificate for {', '.join(lb_domains)}: the CA at {directory} answered with a rate limit "
        "(Error creating new order :: too many certificates" in line
    ), line
    assert line.endswith("fix: wait until 2026-12-10 10:00:00 UTC, then converge again"), line
    assert {d: served(pebble["lb_ip"], d, pebble["root"]) for d in lb_domains} == issued


def test_a_missing_directory_stops_before_any_host_is_touched(inv, lab):
    done = subprocess.run(
        [
            str(ansible.tool("ansible-playbook")),
            *ansible.inventory_args(inv.path),
            str(ansible.playbook_path("loadbalancers")),
            "-e",
            '{"loadbalancer_tls_mode": "acme", "loadbalancer_acme_terms_agreed": true}',
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=ansible.ansible_env(True),
    )
    assert done.returncode != 0
    lb = sorted(inv.groups["loadbalancers"])[0]
    assert f"loadbalancer_acme_directory (host {lb}): not set, and loadbalancer_tls_mode is acme" in done.stdout
    # The plan play stopped the run: no task reached a host.
    assert "loadbalancer :" not in done.stdout
