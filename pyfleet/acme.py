"""Certificates from an ACME CA on the load balancers (``loadbalancer_tls_mode: acme``).

What the role decides, in Python with unit tests (roles/loadbalancer/tasks/tls-acme.yml
and acme-order.yml only call these through plugins/filter/pyfleet_acme.py):

- ``check_settings``: the inventory's ACME settings of one load balancer, checked
  before any host is contacted (``pyfleet.plan.build`` runs it for every load
  balancer); a mistake is one line naming the variable, the host and the fix.
- ``domains``: every name the certificate carries (the apps' domains and Flower's).
- ``renewal``: whether to order a certificate now, and why.
- ``challenge_files``: the HTTP-01 answers to write, on every load balancer (the CA
  may ask any of them: they share the apps' names).
- ``failure_line``: the one line a failed order ends with, naming the domains and
  the cause (the directory unreachable, a name that does not lead to the load
  balancer, a rate limit); the certificate in place keeps serving.
"""

import datetime
import re
from urllib.parse import urlsplit

from pyfleet.errors import PyfleetError

# Defaults of roles/loadbalancer/defaults/main.yml that the checks need.
DEFAULT_MODE = "selfsigned"
DEFAULT_RENEW_DAYS = 30
MODES = ("selfsigned", "files", "acme")
# Where nginx serves the HTTP-01 answers from (roles/loadbalancer/vars/main.yml).
CHALLENGE_ROOT = "/var/www/pyfleet-acme"
CHALLENGE_PREFIX = ".well-known/acme-challenge/"
TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")  # RFC 8555 8.3: base64url characters only
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_settings(host, hostvars):
    """Raise PyfleetError (one line) at the first mistake in ``host``'s TLS settings; return the mode.

    ``hostvars``: the host's variables as the play sees them (role defaults absent).
    """
    mode = hostvars.get("loadbalancer_tls_mode") or DEFAULT_MODE
    if mode not in MODES:
        raise PyfleetError(
            f"loadbalancer_tls_mode (host {host}): {mode!r} is not one of {', '.join(MODES)}; "
            "set loadbalancer_tls_mode: selfsigned (lab), files or acme"
        )
    if mode != "acme":
        return mode
    directory = hostvars.get("loadbalancer_acme_directory") or ""
    problem = directory_problem(directory)
    if problem:
        raise PyfleetError(
            f"loadbalancer_acme_directory (host {host}): {problem}; set it to your ACME CA's directory URL "
            "(https://..., the CA documents it)"
        )
    if not _true(hostvars.get("loadbalancer_acme_terms_agreed")):
        raise PyfleetError(
            f"loadbalancer_acme_terms_agreed (host {host}): the CA's terms of service are not agreed to; "
            "read them and set loadbalancer_acme_terms_agreed: true"
        )
    email = hostvars.get("loadbalancer_acme_email") or ""
    if email and not EMAIL.match(str(email)):
        raise PyfleetError(
            f"loadbalancer_acme_email (host {host}): {email!r} is not an e-mail address; "
            "set the address the CA writes to about expiring certificates, or leave it empty"
        )
    days = hostvars.get("loadbalancer_acme_renew_days", DEFAULT_RENEW_DAYS)
    if isinstance(days, str) and days.strip().isdigit():
        days = int(days)  # -e loadbalancer_acme_renew_days=60 (the argument spec converts it too)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise PyfleetError(
            f"loadbalancer_acme_renew_days (host {host}): {days!r} is not a whole number of days above 0; "
            f"set how many days before its end a certificate is renewed, e.g. {DEFAULT_RENEW_DAYS}"
        )
    return mode


def _true(value):
    """Ansible's true for a bool option: True, or 'true'/'yes'/'on'/'1' from -e key=value."""
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1"))


def directory_problem(url):
    """What is wrong with an ACME directory URL, or '' (RFC 8555 6.1: ACME is HTTPS only)."""
    if not url:
        return "not set, and loadbalancer_tls_mode is acme"
    if not isinstance(url, str) or any(c.isspace() for c in url):
        return f"{url!r} is not a URL"
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return f"{url!r} is not an https:// URL (ACME servers are reached over HTTPS only)"
    return ""


def domains(upstreams, flower=None):
    """Every name the load balancer serves over HTTPS, in plan order, once each."""
    names = [d for upstream in upstreams or [] for d in upstream.get("domains") or []]
    if flower and flower.get("domain"):
        names.append(flower["domain"])
    return list(dict.fromkeys(names))


def _asn1_time(text):
    """community.crypto's certificate times ('20270302120000Z') as an aware datetime."""
    return datetime.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=datetime.UTC)


def renewal(info, names, directory, issued_by, renew_days=DEFAULT_RENEW_DAYS, force=False, now=None):
    """{"order": bool, "reason": one line}: whether the load balancer orders a certificate now.

    ``info``: community.crypto.x509_certificate_info's result for the certificate in
    place (failed: there is none). ``issued_by``: the directory URL the certificate in
    place came from ('' when it did not come from ACME: the placeholder, a self-signed
    or a copied one). A certificate is ordered when there is none, it came from
    elsewhere, its names are not ``names``, it ends within ``renew_days``, or ``force``.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    if not info or info.get("failed") or not info.get("not_after"):
        return {"order": True, "reason": "no certificate yet"}
    if issued_by != directory:
        source = f"from {issued_by}" if issued_by else "not from an ACME CA"
        return {"order": True, "reason": f"the certificate in place is {source}, not from {directory}"}
    have = {n[4:] for n in info.get("subject_alt_name") or [] if n.startswith("DNS:")}
    want = set(names)
    if have != want:
        missing, extra = sorted(want - have), sorted(have - want)
        what = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"no longer served {', '.join(extra)}" if extra else "",
            )
            if part
        )
        return {"order": True, "reason": f"the certificate's names changed: {what}"}
    ends = _asn1_time(info["not_after"])
    left = ends - now
    days = left.total_seconds() / 86400
    until = ends.strftime("%Y-%m-%d %H:%M UTC")
    if days <= renew_days:
        return {
            "order": True,
            "reason": f"it ends {until} ({days:.1f} days), inside the renewal window of {renew_days} days",
        }
    if force:
        return {"order": True, "reason": f"renewal forced (loadbalancer_acme_force_renewal); it ends {until}"}
    return {"order": False, "reason": f"valid until {until} ({days:.0f} days); renewed {renew_days} days before"}


def challenge_files(challenge_data, hosts):
    """[{host, path, content}]: each HTTP-01 answer of an order, on each load balancer.

    ``challenge_data``: acme_certificate's first step's ``challenge_data``
    ({name: {"http-01": {"resource": ".well-known/acme-challenge/<token>", "resource_value": ...}}}).
    A name whose authorization is still valid has no challenge (nothing to write).
    """
    files = []
    for name, challenges in sorted((challenge_data or {}).items()):
        http01 = (challenges or {}).get("http-01")
        if not http01:
            continue
        resource = http01["resource"]
        token = resource[len(CHALLENGE_PREFIX) :] if resource.startswith(CHALLENGE_PREFIX) else ""
        if not TOKEN.match(token):
            raise PyfleetError(
                f"the ACME CA sent {name} a challenge at {resource!r}, not a token; refusing to write it"
            )
        files += [
            {"host": host, "path": f"{CHALLENGE_ROOT}/{CHALLENGE_PREFIX}{token}", "content": http01["resource_value"]}
            for host in hosts
        ]
    return files


# The ACME problem types (RFC 8555 6.7) that say why a name failed its validation.
_NAME_PROBLEMS = {
    "dns": "its DNS lookup failed",
    "connection": "the CA could not connect to it on port 80",
    "unauthorized": "the CA did not reach this load balancer",
    "incorrectResponse": "the CA did not reach this load balancer",
    "rejectedIdentifier": "the CA refuses to issue for it",
    "caa": "its CAA records forbid this CA",
}
# pyfleet/failures.py keeps 300 characters of a cause, which it prints after the host's name.
MAX_LINE = 295
_NETWORK = re.compile(
    r"(connection refused|timed out|name or service not known|temporary failure in name resolution|"
    r"no route to host|network is unreachable|certificate verify failed|connection reset)",
    re.I,
)
_CHALLENGE_URL = re.compile(r"https?://[^\s\"']*/\.well-known/acme-challenge/[A-Za-z0-9_-]+")


def failure_line(host, result, names, directory):
    """The one line a failed order ends with: host, domains, cause, that the old certificate serves, the fix.

    ``result``: the failed task's result (``ansible_failed_result``): the directory
    check (``uri``) or one of community.crypto's ACME modules.
    """
    result = result or {}
    msg = " ".join(str(result.get("msg") or "").split())
    other = result.get("other") or {}
    problems = _problem_details(result)
    text = f"{msg} {problems} {_problem_types(result)}"
    url = result.get("url") or other.get("http_url") or ""
    status = result.get("status", other.get("http_status"))
    if "rateLimited" in text:
        retry = re.search(r"retry after (\S+ \S+ UTC|[^:;,\"]+)", text, re.I)
        return _line(
            host,
            ", ".join(names),
            f"the CA at {directory} answered with a rate limit",
            problems or msg,
            f"wait{' until ' + retry.group(1).strip() if retry else ' for the limit to reset'}, then converge again",
        )
    if url.rstrip("/") == directory.rstrip("/") or (directory in msg and _NETWORK.search(msg)):
        network = _NETWORK.search(msg)
        why = network.group(1) if network else (f"HTTP {status}" if status not in (None, -1) else msg)
        return _line(
            host,
            ", ".join(names),
            f"the ACME directory {directory} is unreachable",
            why,
            "check loadbalancer_acme_directory and the route to it",
        )
    failed = _failed_name(result, text, names)
    if failed:
        kind = next((k for k in _NAME_PROBLEMS if f"acme:error:{k}" in text), "")
        return _line(
            host,
            failed,
            f"HTTP-01 failed, {_NAME_PROBLEMS.get(kind, 'the CA could not validate it')}",
            problems or msg,
            "point its DNS at the load balancers, port 80 open",
        )
    return _line(host, ", ".join(names), "the order failed", msg, "see the message, then converge again")


def _line(host, subject, cause, detail, fix):
    """``host: no new ACME certificate for subject: cause (detail); ...; fix: ...``, the detail cut to fit."""
    detail = _CHALLENGE_URL.sub("/.well-known/acme-challenge/...", " ".join(str(detail).split()))
    head = f"{host}: no new ACME certificate for {subject}: {cause}"
    tail = f"; old certificate still served; fix: {fix}"
    room = MAX_LINE - (len(head) - len(f"{host}: ")) - len(tail) - 3
    if detail and room > 10:
        detail = detail if len(detail) <= room else detail[: room - 3] + "..."
        return f"{head} ({detail}){tail}"
    return head + tail


def _problem_details(result):
    """The ACME problem documents in a failed module's result (other.problem, challenge errors), flattened."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            if "type" in value and "detail" in value:
                found.append(str(value["detail"]))
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk({k: v for k, v in result.items() if k != "msg"})
    return "; ".join(dict.fromkeys(" ".join(str(f).split()) for f in found))


def _problem_types(result):
    """The ACME problem types in a failed module's result (urn:ietf:params:acme:error:...), space separated."""
    return " ".join(sorted(set(re.findall(r"urn:ietf:params:acme:error:\w+", repr(result)))))


def _failed_name(result, text, names):
    """The name whose authorization failed: the module's identifier, else the first of ``names`` in the text."""
    identifier = str((result.get("other") or {}).get("identifier") or "")
    if identifier.startswith("dns:") and identifier[4:] in names:
        return identifier[4:]
    for name in sorted(names, key=len, reverse=True):  # a.b.test before b.test
        if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text):
            return name
    return ""
