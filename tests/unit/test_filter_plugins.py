"""plugins/filter: the filters the roles call exist under their names and hand their arguments on in order.

The decisions themselves are pyfleet's (tested in test_acme, test_decisions, test_broker, ...);
these tests call each plugin's functions as Ansible does, through ``FilterModule().filters()``.
"""

import re
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from plugin_module import ROOT, load

from pyfleet import acme, decisions, firewall, sandbox
from pyfleet.apps import normalize_apps
from pyfleet.celeryconfig import render_config_module

PLUGINS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "plugins" / "filter").glob("pyfleet_*.py"))


def filters(name):
    return load(f"plugins/filter/{name}.py").FilterModule().filters()


def used_filters():
    """Every ``| pyfleet_...`` filter in the roles, playbooks and templates."""
    found = set()
    for top in ("roles", "playbooks", "templates"):
        for f in (ROOT / top).rglob("*"):
            if f.is_file() and f.suffix in (".yml", ".yaml", ".j2"):
                found |= set(re.findall(r"\|\s*(pyfleet_[a-z_]+)", f.read_text(encoding="utf-8")))
    return found


def test_every_filter_the_roles_use_is_provided_and_each_provided_one_is_used():
    provided = {}
    for rel in PLUGINS:
        for name in load(rel).FilterModule().filters():
            assert name not in provided, f"{name} is provided by {provided.get(name)} and {rel}"
            provided[name] = rel
    assert set(provided) == used_filters()


@pytest.mark.parametrize("rel", PLUGINS)
def test_each_plugin_names_its_filters_in_its_first_lines(rel):
    """The module docstring (what ansible-doc and a reader see first) lists the filters it holds."""
    module = load(rel)
    head = module.__doc__.split("\n\n")[0]
    assert set(re.findall(r"pyfleet_[a-z_]+", head)) == set(module.FilterModule().filters())


# --- pyfleet_acme -------------------------------------------------------------------------


def test_acme_problem_is_empty_for_good_settings_and_one_line_for_bad_ones():
    problem = filters("pyfleet_acme")["pyfleet_acme_problem"]
    assert problem("lb1", {"loadbalancer_tls_mode": "selfsigned"}) == ""
    assert problem("lb1", None) == ""
    assert problem("lb1", {"loadbalancer_tls_mode": "letsencrypt"}) == (
        "loadbalancer_tls_mode (host lb1): 'letsencrypt' is not one of selfsigned, files, acme; "
        "set loadbalancer_tls_mode: selfsigned (lab), files or acme"
    )


def test_acme_failure_takes_the_result_first_as_ansible_pipes_it():
    failure = filters("pyfleet_acme")["pyfleet_acme_failure"]
    result = {"failed": True, "msg": "Error creating new account: rate limited"}
    expected = acme.failure_line("lb1", result, ["a.example"], "https://ca.example/dir")
    assert failure(result, "lb1", ["a.example"], "https://ca.example/dir") == expected
    assert "lb1" in expected and "a.example" in expected


def test_acme_domains_renewal_and_challenge_files_are_pyfleet_acmes():
    f = filters("pyfleet_acme")
    assert f["pyfleet_acme_domains"]([{"domains": ["a.example", "b.example"]}], {"domain": "f.example"}) == [
        "a.example",
        "b.example",
        "f.example",
    ]
    assert f["pyfleet_acme_renewal"]({"failed": True}, ["a.example"], "https://ca", "") == {
        "order": True,
        "reason": "no certificate yet",
    }
    assert f["pyfleet_acme_challenge_files"] is acme.challenge_files


# --- pyfleet_apps -------------------------------------------------------------------------


@pytest.fixture
def wsgi_app():
    spec = {
        "name": "hello",
        "kind": "wsgi",
        "entry": "hello.wsgi:app",
        "source": {"path": "."},
        "domains": ["hello.test"],
    }
    return normalize_apps([spec], check_paths=False)[0]


@pytest.mark.parametrize(("cpus", "workers"), [(2, 5), ("2", 5), ("16", 33)])
def test_app_workers_reads_the_cpu_count_as_ansible_gives_it(wsgi_app, cpus, workers):
    assert filters("pyfleet_apps")["pyfleet_app_workers"](wsgi_app, cpus) == workers


@pytest.mark.parametrize("cpus", ["two", "", "-1", None, 0])
def test_app_workers_refuses_a_cpu_count_that_is_no_positive_number_as_a_filter_error(wsgi_app, cpus):
    with pytest.raises(
        AnsibleFilterError, match=r"^hello: cpus .* is not a positive integer; pass the host's CPU count"
    ):
        filters("pyfleet_apps")["pyfleet_app_workers"](wsgi_app, cpus)


# --- pyfleet_decisions --------------------------------------------------------------------


def test_failure_line_takes_the_result_first_as_ansible_pipes_it():
    line = filters("pyfleet_decisions")["pyfleet_failure_line"]
    result = {"failed": True, "msg": "web1: app hello: the health check failed"}
    assert line(result, "web1") == decisions.failure_line("web1", result)
    assert line(result, "web1").startswith("web1")


def test_the_other_decision_filters_are_pyfleets():
    f = filters("pyfleet_decisions")
    assert f["pyfleet_exec_start"] is decisions.exec_start
    assert f["pyfleet_units_to_restart"] is decisions.units_to_restart
    assert f["pyfleet_rabbitmq_problem"] is decisions.rabbitmq_problem
    assert f["pyfleet_ssh_lockout"] is firewall.ssh_lockout


# --- pyfleet_plan ---------------------------------------------------------------------------


def test_plan_is_the_fleet_plan_or_its_error_as_data():
    plan = filters("pyfleet_plan")["pyfleet_plan"]
    answer = plan({"web1": {"pyfleet_apps": "hello"}}, {"all": ["web1"], "web": ["web1"]})
    assert list(answer) == ["error"]
    assert answer["error"].startswith("pyfleet_apps")


def test_plan_reads_app_sources_relative_to_the_project_dir(tmp_path):
    from rendering import FIXTURES, GROUPS, fleet_hostvars

    plan = filters("pyfleet_plan")["pyfleet_plan"]
    assert "error" not in plan(fleet_hostvars(), GROUPS, project_dir=str(FIXTURES))
    missing = plan(fleet_hostvars(), GROUPS, project_dir=str(tmp_path))
    assert str(tmp_path) in missing["error"]


# --- pyfleet_sandbox ------------------------------------------------------------------------


def test_sandbox_without_relaxations_is_the_full_sandbox():
    sb = filters("pyfleet_sandbox")["pyfleet_sandbox"]
    assert sb(None) == sandbox.directives([])
    assert sb([], ["/srv/app"], ["10.0.0.4"], ["@chown"]) == sandbox.directives(
        [], ["/srv/app"], ["10.0.0.4"], ["@chown"]
    )
    assert sb([]) == sandbox.directives([], (), (), ())


# --- pyfleet_workers ------------------------------------------------------------------------


def test_broker_url_and_result_backend_refuse_a_fleet_without_a_broker_as_a_filter_error():
    f = filters("pyfleet_workers")
    with pytest.raises(AnsibleFilterError, match="no broker host"):
        f["pyfleet_broker_url"]([], {}, "pw")
    with pytest.raises(AnsibleFilterError, match="no broker host"):
        f["pyfleet_result_backend"]([], {}, "pw")


def test_redis_is_the_default_broker_and_its_backend_is_the_brokers_next_database():
    f = filters("pyfleet_workers")
    hostvars = {"broker1": {"ansible_host": "10.1.0.4"}}
    assert f["pyfleet_broker_url"](["broker1"], hostvars, "pw") == "redis://:pw@10.1.0.4:6379/0"
    assert f["pyfleet_result_backend"](["broker1"], hostvars, "pw").startswith("redis://:pw@10.1.0.4:6379/")


def test_celery_config_renders_the_plans_module_and_refuses_anything_else():
    from celery_inventory import plan

    config = filters("pyfleet_workers")["pyfleet_celery_config"]
    celery = plan()
    assert config(celery) == render_config_module(celery)
    with pytest.raises(
        AnsibleFilterError, match=r"^pyfleet_celery_config: expected the Celery plan, pyfleet_plan.celery \("
    ):
        config({})
    with pytest.raises(AnsibleFilterError, match=r"^pyfleet_celery_config: expected the Celery plan"):
        config(None)


def test_plugin_paths_are_the_repos():
    assert all(Path(ROOT / rel).exists() for rel in PLUGINS) and len(PLUGINS) == 8


def test_plan_reads_app_sources_relative_to_the_working_directory_by_default(monkeypatch):
    from rendering import FIXTURES, GROUPS, fleet_hostvars

    monkeypatch.chdir(FIXTURES)
    assert "error" not in filters("pyfleet_plan")["pyfleet_plan"](fleet_hostvars(), GROUPS)


def test_app_accounts_hands_the_apps_and_nginx_user_on():
    from pyfleet.apps import accounts

    apps = [{"name": "api", "user": "app_api", "group": "app_api", "base_dir": "/srv/api"}]
    assert filters("pyfleet_app_accounts")["pyfleet_app_accounts"](apps, "www-data") == accounts(apps, "www-data")
    with pytest.raises(AnsibleFilterError, match="expected normalised apps"):
        filters("pyfleet_app_accounts")["pyfleet_app_accounts"]([{"name": "api"}], "www-data")
