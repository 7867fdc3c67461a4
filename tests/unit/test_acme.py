"""The load balancer's ACME mode: the settings check, the names, the renewal decision,
the HTTP-01 answers, the one-line failures (pyfleet/acme.py), and what the nginx
template serves for the CA.

The failed results below are what the lab printed (``-v``) for a directory nobody
listens at and a name that leads to a web host instead of the load balancer; the
rate-limit one is the shape community.crypto gives a 429 problem document
(``ACMEProtocolException``: message, then ``other.problem``), which Pebble never sends.
"""

import datetime

import pytest
from rendering import GROUPS, find, fleet_hostvars, nginx, render, values
from test_safety_nginx import servers

from pyfleet import acme, plan as plan_mod
from pyfleet.errors import PyfleetError

DIRECTORY = "https://acme.test/directory"
NAMES = ["hello.lab.test", "hello-async.lab.test", "flower.lab.test"]
GOOD = {
    "loadbalancer_tls_mode": "acme",
    "loadbalancer_acme_directory": DIRECTORY,
    "loadbalancer_acme_terms_agreed": True,
}
NOW = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)


# ---- the settings, before any host is contacted -------------------------------------


def test_selfsigned_and_files_need_no_acme_setting():
    assert acme.check_settings("lb1", {}) == "selfsigned"
    assert acme.check_settings("lb1", {"loadbalancer_tls_mode": "files"}) == "files"
    assert acme.check_settings("lb1", GOOD) == "acme"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"loadbalancer_acme_directory": ""},
            "loadbalancer_acme_directory (host lb1): not set, and loadbalancer_tls_mode is acme; "
            "set it to your ACME CA's directory URL (https://..., the CA documents it)",
        ),
        (
            {"loadbalancer_acme_directory": "http://acme.test/directory"},
            "loadbalancer_acme_directory (host lb1): 'http://acme.test/directory' is not an https:// URL "
            "(ACME servers are reached over HTTPS only); set it to your ACME CA's directory URL "
            "(https://..., the CA documents it)",
        ),
        (
            {"loadbalancer_acme_terms_agreed": False},
            "loadbalancer_acme_terms_agreed (host lb1): the CA's terms of service are not agreed to; "
            "read them and set loadbalancer_acme_terms_agreed: true",
        ),
        (
            {"loadbalancer_acme_email": "ops"},
            "loadbalancer_acme_email (host lb1): 'ops' is not an e-mail address; set the address the CA "
            "writes to about expiring certificates, or leave it empty",
        ),
        (
            {"loadbalancer_acme_renew_days": 0},
            "loadbalancer_acme_renew_days (host lb1): 0 is not a whole number of days above 0; "
            "set how many days before its end a certificate is renewed, e.g. 30",
        ),
        (
            {"loadbalancer_tls_mode": "letsencrypt"},
            "loadbalancer_tls_mode (host lb1): 'letsencrypt' is not one of selfsigned, files, acme; "
            "set loadbalancer_tls_mode: selfsigned (lab), files or acme",
        ),
    ],
    ids=["no-directory", "http-directory", "terms", "email", "renew-days", "mode"],
)
def test_a_mistake_is_one_line_naming_variable_host_and_fix(change, expected):
    with pytest.raises(PyfleetError) as caught:
        acme.check_settings("lb1", {**GOOD, **change})
    assert str(caught.value) == expected


def test_values_given_with_e_key_value_are_taken_as_ansible_takes_them():
    settings = {**GOOD, "loadbalancer_acme_terms_agreed": "true", "loadbalancer_acme_renew_days": "60"}
    assert acme.check_settings("lb1", settings) == "acme"


def test_the_plan_refuses_an_acme_load_balancer_without_a_directory():
    hostvars = fleet_hostvars()
    hostvars["lb1"].update(loadbalancer_tls_mode="acme", loadbalancer_acme_terms_agreed=True)
    with pytest.raises(PyfleetError, match=r"^loadbalancer_acme_directory \(host lb1\): not set"):
        plan_mod.build(hostvars, GROUPS, check_paths=False)


# ---- which names, whether to order ---------------------------------------------------


def test_domains_are_the_apps_and_flowers_once_each_in_plan_order():
    upstreams = [{"domains": ["a.test", "www.a.test"]}, {"domains": ["b.test", "a.test"]}]
    assert acme.domains(upstreams, {"domain": "flower.test"}) == ["a.test", "www.a.test", "b.test", "flower.test"]
    assert acme.domains(upstreams, {}) == ["a.test", "www.a.test", "b.test"]


def info(days_left, names=NAMES):
    ends = NOW + datetime.timedelta(days=days_left)
    return {"not_after": ends.strftime("%Y%m%d%H%M%SZ"), "subject_alt_name": [f"DNS:{n}" for n in names]}


def test_no_certificate_is_ordered():
    assert acme.renewal({"failed": True, "msg": "no such file"}, NAMES, DIRECTORY, "", now=NOW) == {
        "order": True,
        "reason": "no certificate yet",
    }


def test_a_certificate_from_elsewhere_is_replaced():
    # The placeholder, a self-signed or a copied certificate; or another directory (staging -> production).
    assert acme.renewal(info(300), NAMES, DIRECTORY, "", now=NOW)["order"]
    other = acme.renewal(info(300), NAMES, DIRECTORY, "https://staging.test/dir", now=NOW)
    assert other == {
        "order": True,
        "reason": f"the certificate in place is from https://staging.test/dir, not from {DIRECTORY}",
    }


def test_a_new_or_removed_name_is_ordered():
    decision = acme.renewal(info(80, [*NAMES[:2], "old.test"]), NAMES, DIRECTORY, DIRECTORY, now=NOW)
    assert decision == {
        "order": True,
        "reason": "the certificate's names changed: missing flower.lab.test; no longer served old.test",
    }


def test_renewed_inside_its_window_only():
    inside = acme.renewal(info(29.5), NAMES, DIRECTORY, DIRECTORY, renew_days=30, now=NOW)
    assert inside == {
        "order": True,
        "reason": "it ends 2027-01-02 00:00 UTC (29.5 days), inside the renewal window of 30 days",
    }
    outside = acme.renewal(info(31), NAMES, DIRECTORY, DIRECTORY, renew_days=30, now=NOW)
    assert outside == {"order": False, "reason": "valid until 2027-01-03 12:00 UTC (31 days); renewed 30 days before"}
    # Pebble's certificates last 5 years: a window wider than that renews them.
    assert acme.renewal(info(1826), NAMES, DIRECTORY, DIRECTORY, renew_days=2000, now=NOW)["order"]


def test_forced_renewal_orders_a_valid_certificate():
    decision = acme.renewal(info(300), NAMES, DIRECTORY, DIRECTORY, force=True, now=NOW)
    assert decision["order"] and decision["reason"].startswith("renewal forced (loadbalancer_acme_force_renewal)")


# ---- the HTTP-01 answers ------------------------------------------------------------


def test_each_answer_goes_to_every_load_balancer():
    data = {
        "a.test": {"http-01": {"resource": ".well-known/acme-challenge/tok_A-1", "resource_value": "tok_A-1.thumb"}},
        "b.test": {},  # its authorization is still valid: nothing to answer
    }
    assert acme.challenge_files(data, ["lb1", "lb2"]) == [
        {"host": h, "path": "/var/www/pyfleet-acme/.well-known/acme-challenge/tok_A-1", "content": "tok_A-1.thumb"}
        for h in ("lb1", "lb2")
    ]
    assert acme.challenge_files({}, ["lb1"]) == []


def test_an_answer_outside_the_challenge_directory_is_refused():
    data = {"a.test": {"http-01": {"resource": ".well-known/acme-challenge/../../etc/x", "resource_value": "x"}}}
    with pytest.raises(PyfleetError, match="not a token"):
        acme.challenge_files(data, ["lb1"])


# ---- one line per failure, naming the domain and the cause --------------------------

UNREACHABLE = {  # roles/loadbalancer/tasks/acme-order.yml's uri check, nothing listening
    "changed": False,
    "elapsed": 0,
    "msg": "Status code was -1 and not [200]: Request failed: <urlopen error [Errno 111] Connection refused>",
    "redirected": False,
    "status": -1,
    "url": "https://localhost:14001/dir",
}
TOKEN_URL = "http://hello-async.lab.test:80/.well-known/acme-challenge/I4gM3wxRVJcglki2kNWzLqYl0wlJsqHJWMH511-Lh30"
WRONG_HOST = {  # acme_certificate's second step: the name leads to a web host, which answered 404
    "changed": False,
    "msg": 'Failed to validate challenge for dns:hello-async.lab.test: Status is not "valid". Challenge http-01: '
    f'Error urn:ietf:params:acme:error:unauthorized: "Non-200 status code from HTTP: {TOKEN_URL} returned 404".',
    "other": {
        "authorization": {
            "challenges": [
                {
                    "error": {
                        "detail": f"Non-200 status code from HTTP: {TOKEN_URL} returned 404",
                        "status": 403,
                        "type": "urn:ietf:params:acme:error:unauthorized",
                    },
                    "status": "invalid",
                    "type": "http-01",
                }
            ],
            "identifier": {"type": "dns", "value": "hello-async.lab.test"},
            "status": "invalid",
        },
        "identifier": "dns:hello-async.lab.test",
    },
}
RATE_DETAIL = (
    "Error creating new order :: too many certificates (5) already issued for this exact set of "
    "identifiers in the last 168h0m0s, retry after 2026-12-04 10:00:00 UTC: see the CA's rate limit docs"
)
RATE_LIMITED = {
    "changed": False,
    "msg": "Giving up after 20 retries for https://acme.test/new-order with HTTP status 429 Too Many Requests. "
    f'Error urn:ietf:params:acme:error:rateLimited: "{RATE_DETAIL}".',
    "other": {
        "http_status": 429,
        "http_url": "https://acme.test/new-order",
        "problem": {"type": "urn:ietf:params:acme:error:rateLimited", "detail": RATE_DETAIL, "status": 429},
        "subproblems": [],
    },
}


def test_an_unreachable_directory_is_one_line():
    line = acme.failure_line("lb1", UNREACHABLE, NAMES, "https://localhost:14001/dir")
    assert line == (
        "lb1: no new ACME certificate for hello.lab.test, hello-async.lab.test, flower.lab.test: the ACME "
        "directory https://localhost:14001/dir is unreachable (Connection refused); old certificate still served; "
        "fix: check loadbalancer_acme_directory and the route to it"
    )


def test_a_name_that_does_not_lead_to_the_load_balancer_is_named():
    line = acme.failure_line("lb1", WRONG_HOST, NAMES, "https://localhost:14000/dir")
    assert line.startswith(
        "lb1: no new ACME certificate for hello-async.lab.test: HTTP-01 failed, "
        "the CA did not reach this load balancer (Non-200 status code from HTTP: "
        "/.well-known/acme-challenge/... returned 404)"
    )
    assert line.endswith("; old certificate still served; fix: point its DNS at the load balancers, port 80 open")


def test_a_rate_limit_is_one_line_with_when_to_retry():
    line = acme.failure_line("lb1", RATE_LIMITED, NAMES, DIRECTORY)
    assert line.startswith(
        f"lb1: no new ACME certificate for hello.lab.test, hello-async.lab.test, flower.lab.test: the CA at "
        f"{DIRECTORY} answered with a rate limit (Error creating new order :: too many certificates"
    )
    assert line.endswith("fix: wait until 2026-12-04 10:00:00 UTC, then converge again")


@pytest.mark.parametrize("result", [UNREACHABLE, WRONG_HOST, RATE_LIMITED, {"msg": "x" * 2000}])
def test_every_failure_is_one_short_line(result):
    line = acme.failure_line("lb1", result, NAMES, DIRECTORY)
    # pyfleet/failures.py keeps 300 characters of a cause.
    assert "\n" not in line and len(line) <= len("lb1: ") + acme.MAX_LINE and "old certificate still served" in line


# ---- what nginx serves the CA ---------------------------------------------------------


def test_acme_mode_serves_the_challenges_over_http_and_redirects_the_rest():
    plan = plan_mod.build(fleet_hostvars(), GROUPS, check_paths=False)
    text = render(
        "loadbalancer",
        "etc/nginx/conf.d/pyfleet-loadbalancer.conf.j2",
        "lb1",
        loadbalancer_flower=plan["celery"]["flower"],
        loadbalancer_tls_mode="acme",
    )
    http = {name: block for (name, https), block in servers(nginx(text)).items() if not https and name != "_"}
    assert sorted(http) == ["api.test", "flower.s.test", "s.test www.s.test"]
    for name, block in http.items():
        locations = {tuple(words[1:]): body for words, body in find(block, "location")}
        challenge = locations[("/.well-known/acme-challenge/",)]
        assert values(challenge, "root") == ["/var/www/pyfleet-acme"], name
        assert values(challenge, "try_files") == ["$uri =404"], name
        assert values(locations[("/",)], "return") == ["301 https://$host$request_uri"], name
        assert values(block, "return") == [], name  # a server-level return would answer before the location


def test_a_name_that_does_not_resolve_is_named_with_its_cause():
    result = {
        "msg": 'Failed to validate challenge for dns:flower.lab.test: Status is not "valid". Challenge http-01: '
        'Error urn:ietf:params:acme:error:dns: "DNS problem: NXDOMAIN looking up A for flower.lab.test".',
        "other": {"identifier": "dns:flower.lab.test"},
    }
    line = acme.failure_line("lb1", result, NAMES, DIRECTORY)
    assert line.startswith(
        "lb1: no new ACME certificate for flower.lab.test: HTTP-01 failed, its DNS lookup failed "
        "(Failed to validate challenge for dns:flower.lab.test"
    ), line


# ---- the edges of the settings check ---------------------------------------------------


@pytest.mark.parametrize("agreed", [True, "true", " Yes ", "on", "1", "TRUE"])
def test_terms_agreed_as_ansible_writes_true(agreed):
    assert acme.check_settings("lb1", {**GOOD, "loadbalancer_acme_terms_agreed": agreed}) == "acme"


@pytest.mark.parametrize("agreed", [None, False, "false", "no", "0", 1, "y"])
def test_terms_not_agreed(agreed):
    with pytest.raises(PyfleetError, match=r"^loadbalancer_acme_terms_agreed \(host lb1\)"):
        acme.check_settings("lb1", {**GOOD, "loadbalancer_acme_terms_agreed": agreed})


@pytest.mark.parametrize("days", [1, " 7 ", "60", 30])
def test_renew_days_taken(days):
    assert acme.check_settings("lb1", {**GOOD, "loadbalancer_acme_renew_days": days}) == "acme"


@pytest.mark.parametrize("days", [-1, True, 1.5, "x", "-3", None])
def test_renew_days_refused(days):
    with pytest.raises(PyfleetError) as caught:
        acme.check_settings("lb1", {**GOOD, "loadbalancer_acme_renew_days": days})
    assert str(caught.value) == (
        f"loadbalancer_acme_renew_days (host lb1): {days!r} is not a whole number of days above 0; "
        "set how many days before its end a certificate is renewed, e.g. 30"
    )


@pytest.mark.parametrize("email", ["ops@example.com", "", None, "a.b+c@mail.example.org"])
def test_email_optional_and_an_address(email):
    assert acme.check_settings("lb1", {**GOOD, "loadbalancer_acme_email": email}) == "acme"


@pytest.mark.parametrize("email", ["ops@example", "ops @example.com", "@example.com", "ops@.com x"])
def test_email_not_an_address(email):
    with pytest.raises(PyfleetError, match=r"^loadbalancer_acme_email \(host lb1\): "):
        acme.check_settings("lb1", {**GOOD, "loadbalancer_acme_email": email})


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "not set, and loadbalancer_tls_mode is acme"),
        (None, "not set, and loadbalancer_tls_mode is acme"),
        ("https://acme.test/dir ectory", "'https://acme.test/dir ectory' is not a URL"),
        ("https://acme.test/dir\n", "'https://acme.test/dir\\n' is not a URL"),
        (42, "42 is not a URL"),
        (
            "https:///directory",
            "'https:///directory' is not an https:// URL (ACME servers are reached over HTTPS only)",
        ),
        ("ftp://acme.test/d", "'ftp://acme.test/d' is not an https:// URL (ACME servers are reached over HTTPS only)"),
        ("https://acme.test/directory", ""),
        ("HTTPS://acme.test/directory", ""),
    ],
)
def test_directory_problem(url, problem):
    assert acme.directory_problem(url) == problem


def test_domains_without_apps_or_flower_domain():
    assert acme.domains(None, None) == []
    assert acme.domains([{"domains": None}, {}], {"domain": ""}) == []
    assert acme.domains([{"domains": ["a.test"]}], {"domain": "a.test"}) == ["a.test"]


# ---- the renewal decision's edges -------------------------------------------------------


def test_a_certificate_not_from_acme_says_so():
    assert acme.renewal(info(300), NAMES, DIRECTORY, "", now=NOW) == {
        "order": True,
        "reason": f"the certificate in place is not from an ACME CA, not from {DIRECTORY}",
    }


def test_an_info_without_an_end_is_no_certificate():
    for missing in (None, {}, {"subject_alt_name": ["DNS:a"]}):
        assert acme.renewal(missing, NAMES, DIRECTORY, DIRECTORY, now=NOW) == {
            "order": True,
            "reason": "no certificate yet",
        }


def test_names_only_added_or_only_removed():
    added = acme.renewal(info(80, NAMES[:2]), NAMES, DIRECTORY, DIRECTORY, now=NOW)
    assert added["reason"] == "the certificate's names changed: missing flower.lab.test"
    removed = acme.renewal(info(80, [*NAMES, "old.test"]), NAMES, DIRECTORY, DIRECTORY, now=NOW)
    assert removed["reason"] == "the certificate's names changed: no longer served old.test"
    with_ip = info(80, list(reversed(NAMES)))
    with_ip["subject_alt_name"].append("IP:10.0.0.1")
    same = acme.renewal(with_ip, NAMES, DIRECTORY, DIRECTORY, now=NOW)
    assert same["order"] is False  # order and non-DNS names do not matter


def test_the_window_edge_and_forced_reason():
    edge = acme.renewal(info(30), NAMES, DIRECTORY, DIRECTORY, renew_days=30, now=NOW)
    assert edge["order"] is True and "(30.0 days), inside the renewal window of 30 days" in edge["reason"]
    assert acme.renewal(info(300), NAMES, DIRECTORY, DIRECTORY, force=True, now=NOW) == {
        "order": True,
        "reason": "renewal forced (loadbalancer_acme_force_renewal); it ends 2027-09-29 12:00 UTC",
    }
    # The default window is 30 days, and now is the clock's.
    assert acme.renewal(info(29), NAMES, DIRECTORY, DIRECTORY, now=NOW)["order"]
    far = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=400)
    late = {"not_after": far.strftime("%Y%m%d%H%M%SZ"), "subject_alt_name": [f"DNS:{n}" for n in NAMES]}
    assert acme.renewal(late, NAMES, DIRECTORY, DIRECTORY)["order"] is False


# ---- the HTTP-01 answers' edges ----------------------------------------------------------


@pytest.mark.parametrize(
    "resource",
    [
        ".well-known/acme-challenge/",
        "acme-challenge/tok",
        "/.well-known/acme-challenge/tok",
        ".well-known/acme-challenge/a b",
    ],
)
def test_a_resource_that_is_not_a_token_in_the_challenge_directory_is_refused(resource):
    data = {"a.test": {"http-01": {"resource": resource, "resource_value": "v"}}}
    with pytest.raises(PyfleetError) as caught:
        acme.challenge_files(data, ["lb1"])
    assert (
        str(caught.value) == f"the ACME CA sent a.test a challenge at {resource!r}, not a token; refusing to write it"
    )


def test_answers_in_name_order_and_none_without_http01():
    data = {
        "b.test": {"http-01": {"resource": ".well-known/acme-challenge/B", "resource_value": "vb"}},
        "a.test": {"http-01": {"resource": ".well-known/acme-challenge/A", "resource_value": "va"}},
        "c.test": None,
        "d.test": {"dns-01": {"resource": "_acme-challenge", "resource_value": "x"}},
    }
    files = acme.challenge_files(data, ["lb1"])
    assert [f["content"] for f in files] == ["va", "vb"]
    assert acme.challenge_files(None, ["lb1"]) == []


# ---- failure lines' edges -----------------------------------------------------------------


def test_a_rate_limit_without_a_time_says_wait_for_the_reset():
    result = {"msg": "Error urn:ietf:params:acme:error:rateLimited: too many orders"}
    line = acme.failure_line("lb1", result, ["a.test", "b.test"], DIRECTORY)
    assert line == (
        f"lb1: no new ACME certificate for a.test, b.test: the CA at {DIRECTORY} answered with a rate limit "
        "(Error urn:ietf:params:acme:error:rateLimited: too many orders); old certificate still served; "
        "fix: wait for the limit to reset, then converge again"
    )


def test_a_rate_limit_in_the_problem_type_only():
    result = {"msg": "order failed", "other": {"problem": {"type": "urn:ietf:params:acme:error:rateLimited"}}}
    assert "answered with a rate limit (order failed)" in acme.failure_line("lb1", result, ["a.test"], DIRECTORY)


def test_a_directory_answering_an_http_error_is_unreachable_with_its_status():
    result = {"msg": "Status code was 503 and not [200]: HTTP Error 503", "status": 503, "url": DIRECTORY + "/"}
    assert acme.failure_line("lb1", result, ["a.test"], DIRECTORY) == (
        f"lb1: no new ACME certificate for a.test: the ACME directory {DIRECTORY} is unreachable (HTTP 503); "
        "old certificate still served; fix: check loadbalancer_acme_directory and the route to it"
    )


def test_a_network_error_naming_the_directory_is_unreachable():
    result = {"msg": f"Cannot  fetch {DIRECTORY}: <urlopen error timed out>"}
    line = acme.failure_line("lb1", result, ["a.test"], DIRECTORY)
    assert line.startswith(f"lb1: no new ACME certificate for a.test: the ACME directory {DIRECTORY} is unreachable")
    assert "(timed out)" in line
    # The directory named but no network error: another failure.
    other = acme.failure_line("lb1", {"msg": f"bad answer from {DIRECTORY}"}, ["x.test"], DIRECTORY)
    assert "the order failed" in other


def test_an_unreachable_directory_without_a_status_shows_the_message():
    result = {"msg": "Request failed: something odd", "status": -1, "url": DIRECTORY}
    assert "is unreachable (Request failed: something odd)" in acme.failure_line("lb1", result, ["a"], DIRECTORY)
    result = {"msg": "Request failed: odd", "other": {"http_url": DIRECTORY, "http_status": 502}}
    assert "is unreachable (HTTP 502)" in acme.failure_line("lb1", result, ["a"], DIRECTORY)


@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        ("dns", "its DNS lookup failed"),
        ("connection", "the CA could not connect to it on port 80"),
        ("incorrectResponse", "the CA did not reach this load balancer"),
        ("rejectedIdentifier", "the CA refuses to issue for it"),
        ("caa", "its CAA records forbid this CA"),
        ("serverInternal", "the CA could not validate it"),
    ],
)
def test_each_validation_problem_is_named(kind, cause):
    result = {"msg": f"Error urn:ietf:params:acme:error:{kind}: about b.a.test", "other": {}}
    line = acme.failure_line("lb1", result, ["a.test", "b.a.test"], DIRECTORY)
    assert line.startswith(f"lb1: no new ACME certificate for b.a.test: HTTP-01 failed, {cause} (")


def test_the_failed_name_from_the_identifier_or_the_longest_name_in_the_text():
    result = {"msg": "validation failed", "other": {"identifier": "dns:b.test"}}
    line = acme.failure_line("lb1", result, ["a.test", "b.test"], DIRECTORY)
    assert line.startswith("lb1: no new ACME certificate for b.test: HTTP-01 failed, the CA could not validate it")
    # The longest name first: www.a.test is not taken for a.test.
    result = {"msg": "validation of www.a.test failed", "other": {}}
    line = acme.failure_line("lb1", result, ["a.test", "www.a.test", "zz.test"], DIRECTORY)
    assert line.startswith("lb1: no new ACME certificate for www.a.test: HTTP-01 failed")
    # An identifier of a name not ordered, or of another type, is not taken.
    result = {"msg": "problem with www.a.test", "other": {"identifier": "dns:other.test"}}
    assert "for www.a.test: HTTP-01 failed" in acme.failure_line("lb1", result, ["a.test", "www.a.test"], DIRECTORY)
    result = {"msg": "problem with xa.test and a.test-b", "other": {"identifier": "ip:10.0.0.1"}}
    assert "the order failed" in acme.failure_line("lb1", result, ["a.test"], DIRECTORY)


def test_problem_details_nested_and_once_each():
    detail = {"type": "urn:ietf:params:acme:error:dns", "detail": "no  A record"}
    result = {
        "msg": "validation of a.test failed",
        "other": {"challenges": [detail, {"error": dict(detail)}], "problem": {"type": "x", "detail": "second"}},
    }
    line = acme.failure_line("lb1", result, ["a.test"], DIRECTORY)
    assert "(no A record; second)" in line and "its DNS lookup failed" in line


def test_a_long_detail_is_cut_with_dots_and_a_long_subject_drops_it():
    line = acme.failure_line("lb1", {"msg": "y" * 1000}, ["a.test"], DIRECTORY)
    assert len(line) - len("lb1: ") == acme.MAX_LINE and "y..." in line
    assert line.endswith("...); old certificate still served; fix: see the message, then converge again")
    many = [f"name{i}.example.test" for i in range(14)]
    line = acme.failure_line("lb1", {"msg": "short"}, many, DIRECTORY)
    assert "(short)" not in line and line.endswith(
        ": the order failed; old certificate still served; fix: see the message, then converge again"
    )
    assert acme.failure_line("lb1", None, ["a.test"], DIRECTORY) == (
        "lb1: no new ACME certificate for a.test: the order failed; old certificate still served; "
        "fix: see the message, then converge again"
    )


def test_a_failed_certificate_info_is_no_certificate_even_with_an_end():
    failed = dict(info(300), failed=True)
    assert acme.renewal(failed, NAMES, DIRECTORY, DIRECTORY, now=NOW) == {"order": True, "reason": "no certificate yet"}


def test_several_names_added_and_removed_are_listed():
    decision = acme.renewal(info(80, ["old.test", "older.test"]), NAMES[:2], DIRECTORY, DIRECTORY, now=NOW)
    assert decision["reason"] == (
        "the certificate's names changed: missing hello-async.lab.test, hello.lab.test; "
        "no longer served old.test, older.test"
    )


def test_a_certificate_ending_a_second_after_the_window_is_not_renewed_yet():
    ends = NOW + datetime.timedelta(days=30, seconds=1)
    late = {"not_after": ends.strftime("%Y%m%d%H%M%SZ"), "subject_alt_name": [f"DNS:{n}" for n in NAMES]}
    assert acme.renewal(late, NAMES, DIRECTORY, DIRECTORY, renew_days=30, now=NOW)["order"] is False


def test_names_without_a_challenge_do_not_stop_the_others():
    data = {
        "0.test": None,
        "a.test": {"http-01": {"resource": ".well-known/acme-challenge/A", "resource_value": "va"}},
    }
    assert [f["content"] for f in acme.challenge_files(data, ["lb1"])] == ["va"]


def test_a_resource_outside_the_challenge_directory_is_refused_whatever_its_length():
    resource = "other-dir/acme-challenges/tok"  # as long as the challenge prefix, then a token
    data = {"a.test": {"http-01": {"resource": resource, "resource_value": "v"}}}
    with pytest.raises(PyfleetError, match="not a token"):
        acme.challenge_files(data, ["lb1"])


def test_a_rate_limit_retry_time_in_any_case():
    result = {"msg": "Error urn:ietf:params:acme:error:rateLimited: Retry After 2026-12-04 10:00:00 UTC"}
    line = acme.failure_line("lb1", result, ["a.test"], DIRECTORY)
    assert line.endswith("fix: wait until 2026-12-04 10:00:00 UTC, then converge again")


def test_a_directory_written_with_a_trailing_slash_is_the_same_directory():
    result = {"msg": "Status code was 503", "status": 503, "url": DIRECTORY}
    line = acme.failure_line("lb1", result, ["a.test"], DIRECTORY + "/")
    assert "is unreachable (HTTP 503)" in line


def test_an_unknown_failure_names_every_domain():
    line = acme.failure_line("lb1", {"msg": "odd"}, ["a.test", "b.test"], DIRECTORY)
    assert line.startswith("lb1: no new ACME certificate for a.test, b.test: the order failed (odd)")


def _room(subject):
    """The characters _line leaves for the detail with this subject (the order-failed line)."""
    head = f"no new ACME certificate for {subject}: the order failed"
    return (
        acme.MAX_LINE - len(head) - len("; old certificate still served; fix: see the message, then converge again") - 3
    )


def test_a_detail_is_shown_when_more_than_ten_characters_fit_and_whole_when_it_fits():
    base = _room("")
    eleven = "n" * (base - 11)  # one name that leaves room for 11 characters
    assert _room(eleven) == 11
    assert "(detail)" in acme.failure_line("lb1", {"msg": "detail"}, [eleven], DIRECTORY)
    ten = "n" * (base - 10)
    assert "(detail)" not in acme.failure_line("lb1", {"msg": "detail"}, [ten], DIRECTORY)
    exact = "d" * 11
    assert f"({exact})" in acme.failure_line("lb1", {"msg": exact}, [eleven], DIRECTORY)
