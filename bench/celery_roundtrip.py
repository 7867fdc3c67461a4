"""No-op Celery task round trips per second through the lab.

Runs a small producer on one lab host (default web1) in the app's current
release, with the generated Celery environment (broker, result backend,
routes): it sends `sampleapp.tasks.noop` (the default type's queue) and waits
for each result. Two figures: one task at a time (latency bound), and a window
of tasks in flight (throughput). Bounded: COUNT tasks, each with a timeout.
Needs the lab up and converged (`fab up`).

Usage: .venv/bin/python bench/celery_roundtrip.py [count] [host] [in_flight]
"""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONNECTION = ROOT / ".lab" / "lab" / "connection.yml"
APP = "hello"

PRODUCER = r"""
import sys, time
from sampleapp.tasks import app
count, window = int(sys.argv[1]), int(sys.argv[2])
app.send_task("sampleapp.tasks.noop").get(timeout=30)  # warm up connections
start = time.monotonic()
for _ in range(count):
    app.send_task("sampleapp.tasks.noop").get(timeout=30)
serial = count / (time.monotonic() - start)
start = time.monotonic()
pending = []
for _ in range(count):
    pending.append(app.send_task("sampleapp.tasks.noop"))
    if len(pending) >= window:
        pending.pop(0).get(timeout=30)
for result in pending:
    result.get(timeout=30)
parallel = count / (time.monotonic() - start)
print(f"{serial:.1f} {parallel:.1f}")
"""


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    host = sys.argv[2] if len(sys.argv) > 2 else "web1"
    window = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    conn = yaml.safe_load(CONNECTION.read_text())
    address = conn["all"]["hosts"][host]["ansible_host"]
    key = conn["all"]["vars"]["ansible_ssh_private_key_file"]
    remote = (
        f"set -a; . /etc/pyfleet/celery/{APP}.env; set +a; cd /srv/{APP}/current && "
        f"timeout 300 venv/bin/python - {count} {window}"
    )
    out = subprocess.run(
        ["ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", f"root@{address}", remote],
        input=PRODUCER, capture_output=True, text=True, timeout=330, check=False,
    )
    if out.returncode != 0:
        sys.exit(f"producer on {host} failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
    serial, parallel = out.stdout.split()
    print(f"no-op task round trips from {host}, {count} tasks:")
    print(f"  one at a time:     {serial} tasks/s")
    print(f"  {window} in flight:      {parallel} tasks/s")


if __name__ == "__main__":
    main()
