"""README "Deploy your own app", followed literally on the lab with a project made here.

A fresh project directory (a plain WSGI callable, no dependency: fab pin adds gunicorn),
its entry in a copy of the lab inventory's apps.yml (the copy keeps the
inventory's directory name, so it is the same lab), then the section's two
commands, `fab pin --app ownapp` and `fab up`, and requests to the URL `fab up`
prints. Afterwards the app is undeployed from the web hosts by hand (UNDEPLOY), so
the lab runs what it ran before.
"""

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from pyfleet import remote

ROOT = Path(__file__).resolve().parents[2]
FAB = str(ROOT / ".venv" / "bin" / "fab")
NAME, DOMAIN = "ownapp", "ownapp.lab.test"

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "ownapp"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = []
"""

APP = '''\
"""A WSGI app nobody here wrote: every path answers JSON, /healthz included."""

import json


def app(environ, start_response):
    body = json.dumps({"app": "ownapp", "path": environ["PATH_INFO"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
'''

# The entry README's section adds to group_vars/all/apps.yml (with this project's path).
SPEC = """\
  - name: ownapp
    source: {{path: {project}}}
    requirements: {project}/requirements.txt
    kind: wsgi
    entry: ownapp:app
    domains: [ownapp.lab.test]
"""


# After the test, on each web host: the app's instances stopped and disabled (a lab
# host restarted by a later test must not start them), its releases gone (a rerun on
# a kept lab deploys afresh). Its user, unit template and nginx site stay, as the
# load balancer's server for its domain does, until the next converge on the lab's
# own inventory removes them (site.yml's last play; test_removal tests that).
UNDEPLOY = (
    f"for u in $(systemctl list-units --all --plain --no-legend 'pyfleet-{NAME}@*' | awk '{{print $1}}'); "
    f'do systemctl disable --now "$u"; done; rm -rf /srv/{NAME}/current /srv/{NAME}/releases/*; true'
)


def fab(*args):
    start = time.monotonic()
    proc = subprocess.run([FAB, *args], cwd=ROOT, capture_output=True, text=True, timeout=900)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


@pytest.fixture(scope="module")
def deployed(inv, lab, tmp_path_factory):
    """The project made, declared, pinned and brought up; yields (fab up's output, seconds per step)."""
    base = tmp_path_factory.mktemp("own")
    project = base / "ownapp"
    project.mkdir()
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "ownapp.py").write_text(APP)
    copy = base / inv.path.name  # the same name: the same lab
    shutil.copytree(inv.path, copy)
    apps_yml = copy / "group_vars" / "all" / "apps.yml"
    apps_yml.write_text(apps_yml.read_text().rstrip("\n") + "\n" + SPEC.format(project=project))
    assert NAME in [a["name"] for a in yaml.safe_load(apps_yml.read_text())["pyfleet_apps"]]
    times = {}
    try:
        code, out, err, times["fab pin"] = fab("pin", "--app", NAME, "--inventory", str(copy))
        assert code == 0, err
        assert (project / "requirements.txt").is_file() and "gunicorn==" in (project / "requirements.txt").read_text()
        code, out, err, times["fab up"] = fab("up", "--inventory", str(copy))
        assert code == 0, err[-3000:] + out[-3000:]
        yield out, times
    finally:
        remote.run_on(inv, inv.groups["web"], UNDEPLOY)
        print(f"\nDeploy your own app: {', '.join(f'{k} {v:.0f} s' for k, v in times.items())}")


def test_pin_wrote_exact_pins_for_the_hosts(deployed, tmp_path_factory):
    pins = next(tmp_path_factory.getbasetemp().glob("own*/ownapp/requirements.txt")).read_text()
    lines = [line for line in pins.splitlines() if line and not line.startswith("#")]
    assert lines and all(re.match(r"^[a-z0-9._-]+==\S+", line) for line in lines), pins
    assert pins.startswith(f"# Exact pins of app {NAME} (from pyproject.toml)")


def test_fab_up_prints_the_url_and_it_answers(deployed):
    out, _ = deployed
    line = next(line for line in out.splitlines() if line.startswith(f"{NAME}: https://{DOMAIN}/"))
    address = re.search(rf"--resolve {re.escape(DOMAIN)}:443:(\S+) ", line).group(1)
    curl = ["curl", "-sk", "--resolve", f"{DOMAIN}:443:{address}", f"https://{DOMAIN}/hello"]
    for _ in range(4):  # both web hosts in turn
        answer = subprocess.run(curl, capture_output=True, text=True, timeout=30, check=True).stdout
        assert answer == '{"app": "ownapp", "path": "/hello"}', answer
