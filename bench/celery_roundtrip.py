"""No-op Celery task round trips per second through the lab, and where the time goes.

A small producer on one lab host (default: the first web host) runs in the
app's current release with the generated Celery environment (broker, result
backend, routes) and sends ``sampleapp.tasks.noop`` to a worker type's queue
(default type ``default``). Measured in one run, each figure bounded by a task
count and a timeout:

- the broker alone, from the producer host: a Redis PING, an LPUSH+BRPOP round
  trip, Celery sends to a queue nobody consumes (a pooled connection, then a new
  connection per send);
- for each worker setting (a variant): round trips one at a time (latency) and
  with WINDOW tasks in flight (throughput), fire-and-forget sends
  (``ignore_result``: no result stored or awaited) until the queue is drained,
  the CPU each part spends per task (producer, broker, worker units, and of
  those the worker's consumer process), the workers' and broker's CPU while
  idle, and the seconds from a restart until every worker answers a ping;
- the settings pyfleet used before (gossip, mingle, heartbeat, STARTED state)
  and the settings as converged, with one worker host and with all of them.

A variant is a runtime drop-in (``/run/systemd/system/<unit>.d``) and a settings
module beside the generated one (``--config``) on each worker host of the type;
both go away at the end and the units restart as converged. With fewer than two
worker hosts of the type, the lab grows by one (worker3, as an operator would add
it: inventory + site.yml) for the run and shrinks again.

In the lab every host shares the controller's CPUs: a second worker host adds
consumers, not CPU. The CPU per task of each part is what scales on real hosts;
the summary turns it into what a fleet with a worker per core would carry.

Usage: .venv/bin/python bench/celery_roundtrip.py [--inventory inventory/lab]
       [--count 1000] [--serial 200] [--window 20] [--host web1] [--type default]
       [--rounds 2] [--quick]
"""

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

from pyfleet import ansible, inventory, lab

APP = "hello"
CELERY_APP = "sampleapp.tasks:app"
EXTRA_HOST = "worker3"
CONFIG_MODULE = "pyfleet_celerybench"
DROPIN = "zz-celerybench.conf"
SSH_TIMEOUT = 300

# Runs on the producer host in the app's release: one measurement per call, JSON out.
PRODUCER = r"""
import json, os, sys, time
STARTED = time.monotonic()
from sampleapp.tasks import app

NOOP = "sampleapp.tasks.noop"
mode, args = sys.argv[1], sys.argv[2:]


def drained(client, queue, deadline):
    while time.monotonic() < deadline:
        if client.llen(queue) == 0 and client.hlen("unacked") == 0:
            return True
        time.sleep(0.005)
    return False


if mode == "ready":
    nodes, deadline = set(args), time.monotonic() + 90
    while time.monotonic() < deadline:
        answered = {n for reply in app.control.ping(timeout=0.25) for n in reply}
        if nodes <= answered:
            waited = time.monotonic() - STARTED
            app.send_task(NOOP).get(timeout=30)
            print(json.dumps({"ready": sorted(answered), "waited_s": waited}))
            sys.exit(0)
    sys.exit(f"workers {sorted(nodes)} not ready after 90 s")

if mode == "broker":
    import redis
    count = int(args[0])
    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    client.ping()
    start = time.monotonic()
    for _ in range(count):
        client.ping()
    ping = (time.monotonic() - start) / count
    key = "celerybench.raw"
    start = time.monotonic()
    for _ in range(count):
        client.lpush(key, b"x")
        client.brpop([key], timeout=5)
    push_pop = (time.monotonic() - start) / count
    client.delete(key)
    print(json.dumps({"ping_us": ping * 1e6, "push_pop_us": push_pop * 1e6}))
    sys.exit(0)

if mode == "send":
    # Sends to a queue nobody consumes: the broker alone, no worker, no result.
    count, queue = int(args[0]), "celerybench"
    app.send_task(NOOP, queue=queue, ignore_result=True)
    start = time.monotonic()
    for _ in range(count):
        app.send_task(NOOP, queue=queue, ignore_result=True)
    pooled = count / (time.monotonic() - start)
    fresh_count = max(1, count // 5)
    start = time.monotonic()
    for _ in range(fresh_count):
        with app.connection_for_write() as conn:
            app.send_task(NOOP, queue=queue, ignore_result=True, producer=app.amqp.Producer(conn))
    fresh = fresh_count / (time.monotonic() - start)
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    print(json.dumps({"pooled_per_s": pooled, "fresh_per_s": fresh}))
    sys.exit(0)

queue = os.environ.get("PYFLEET_BENCH_QUEUE", "default")
count = int(args[0])
app.send_task(NOOP, queue=queue).get(timeout=30)  # warm up connections and subscriptions
cpu, start = time.process_time(), time.monotonic()
sent = []  # task ids whose results the backend stored (kept a day): removed after the figure
if mode == "serial":
    for _ in range(count):
        result = app.send_task(NOOP, queue=queue)
        result.get(timeout=30)
        sent.append(result.id)
elif mode == "window":
    window, pending = int(args[1]), []
    for _ in range(count):
        pending.append(app.send_task(NOOP, queue=queue))
        if len(pending) >= window:
            result = pending.pop(0)
            result.get(timeout=30)
            sent.append(result.id)
    for result in pending:
        result.get(timeout=30)
        sent.append(result.id)
elif mode == "fire":
    for _ in range(count):
        app.send_task(NOOP, queue=queue, ignore_result=True)
    with app.connection_for_write() as conn:
        if not drained(conn.default_channel.client, queue, time.monotonic() + 120):
            sys.exit(f"queue {queue} not drained after 120 s")
elapsed, cpu = time.monotonic() - start, time.process_time() - cpu
# A lab broker is small (redis_maxmemory) and refuses writes when full: leave no results behind.
for i in range(0, len(sent), 500):
    app.backend.client.delete(*(app.backend.get_key_for_task(t) for t in sent[i : i + 500]))
print(json.dumps({"per_s": count / elapsed, "producer_cpu_ms": cpu * 1000 / count}))
"""

# Runs on a lab host as root: CPU seconds (user + system) of the processes of each unit named.
CPU = r"""
import json, os, sys
units, ticks, total, first = sys.argv[1:], os.sysconf("SC_CLK_TCK"), {}, {}
for unit in units:
    total[unit] = 0.0
for pid in sorted(filter(str.isdigit, os.listdir("/proc")), key=int):
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            groups = f.read()
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    for unit in units:
        if f"/{unit}\n" in groups:
            seconds = sum(int(x) for x in fields[11:15]) / ticks
            total[unit] += seconds
            # The unit's oldest process is its main one (Celery's consumer; the pool's children come later).
            first.setdefault(unit + " main", seconds)
print(json.dumps({**total, **first}))
"""


class Lab:
    """The lab hosts the bench talks to, over the lab's SSH key and known_hosts."""

    def __init__(self, inv):
        self.inv = inv
        self.options = lab.ssh_options(lab.Lab(inv))

    def run(self, host, command, stdin="", timeout=SSH_TIMEOUT):
        """Run ``command`` as root on ``host``; its stdout, or exit with its last line."""
        conn = self.inv.hosts[host]
        out = subprocess.run(
            [
                "ssh",
                *self.options,
                "-i",
                conn["ansible_ssh_private_key_file"],
                f"{lab.LAB_USER}@{conn['ansible_host']}",
                f"sudo -n sh -c {shlex.quote(command)}",
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if out.returncode != 0:
            lines = (out.stderr or out.stdout).strip().splitlines()
            sys.exit(f"on {host}: {command.split()[0]}... failed: {lines[-1] if lines else out.returncode}")
        return out.stdout

    def produce(self, host, *args, queue="default"):
        """One producer measurement on ``host`` (see PRODUCER): its JSON."""
        remote = (
            f"set -a; . /etc/pyfleet/celery/{APP}.env; set +a; export PYFLEET_BENCH_QUEUE={shlex.quote(queue)}; "
            f"cd /srv/{APP}/current && timeout {SSH_TIMEOUT - 20} venv/bin/python - "
            + " ".join(shlex.quote(str(a)) for a in args)
        )
        return json.loads(self.run(host, remote, PRODUCER).strip().splitlines()[-1])

    def cpu(self, hosts_units):
        """{(host, unit): CPU seconds} for each host's units."""
        result = {}
        for host, units in hosts_units.items():
            seconds = json.loads(self.run(host, "python3 - " + " ".join(units), CPU))
            result.update({(host, unit): value for unit, value in seconds.items()})
        return result


# --- worker variants ---------------------------------------------------------------

WITHOUT = ["--without-gossip", "--without-mingle", "--without-heartbeat"]


def vary_args(args, drop=(), prefetch=None, pool=None, concurrency=None, extra=()):
    """A worker's command-line options (a list) with some changed."""
    out, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg in drop:
            continue
        has_value = i + 1 < len(args) and not args[i + 1].startswith("-")
        if arg == "--prefetch-multiplier" and prefetch is not None:
            out += [arg, str(prefetch)]
            skip = True
        elif arg == "--pool" and pool is not None:
            out += [arg, pool]
            skip = True
        elif arg == "--concurrency" and concurrency is not None:
            out += [arg, str(concurrency)]
            skip = True
        elif pool in ("threads", "solo") and arg in ("--time-limit", "--soft-time-limit", "-O"):
            skip = has_value
        elif pool == "solo" and arg == "--concurrency":
            skip = True
        else:
            out.append(arg)
    return out + [a for a in extra if a not in out]


def variants(quick):
    """(label, args function, settings overrides, one host too) of each worker setting measured.

    Every variant but "as converged" says all it needs (from the converged options
    without --without-*), so the table reads the same whatever the inventory set.
    """

    def lean(extra=(), **changes):
        return lambda a: vary_args(a, drop=WITHOUT, extra=[*WITHOUT, *extra], **changes)

    quiet = {"task_track_started": False}
    chosen = [
        (
            "pyfleet before (gossip, mingle, heartbeat, STARTED)",
            lambda a: vary_args(a, drop=WITHOUT),
            {"task_track_started": True},
            True,
        ),
        ("pyfleet as converged", None, None, True),
    ]
    if quick:
        return chosen
    return [
        *chosen,
        ("lean: without gossip/mingle/heartbeat, no STARTED", lean(), quiet, False),
        ("lean + STARTED state", lean(), {"task_track_started": True}, False),
        ("lean + gossip, mingle, heartbeat", lambda a: vary_args(a, drop=WITHOUT), quiet, False),
        ("lean + task events (as with Flower)", lean(extra=["--task-events"]), quiet, False),
        (
            "lean + early acks (unsafe: lost on crash)",
            lean(),
            {**quiet, "task_acks_late": False, "task_reject_on_worker_lost": False},
            False,
        ),
        ("lean + prefetch 4 (a type of short tasks)", lean(prefetch=4), quiet, False),
        ("lean + concurrency 4", lean(concurrency=4), quiet, False),
        ("lean + solo pool", lean(pool="solo"), quiet, False),
        ("lean + threads pool x4", lean(pool="threads", concurrency=4), quiet, False),
    ]


class Workers:
    """The worker units of one type on its hosts: apply a variant, restart, wait until ready."""

    def __init__(self, bench, hosts, worker_type):
        self.bench, self.hosts, self.type = bench, hosts, worker_type
        self.unit = f"pyfleet-{APP}-worker@{worker_type}.service"
        self.dropin_dir = f"/run/systemd/system/{self.unit}.d"
        self.config_file = f"/srv/{APP}/shared/celery/{CONFIG_MODULE}.py"
        self.args = {}
        for host in hosts:
            text = bench.run(host, f"cat /etc/systemd/system/{self.unit}.d/pyfleet.conf")
            self.args[host] = shlex.split(re.search(r'CELERY_WORKER_ARGS=([^"]*)"', text).group(1))

    def apply(self, args_of, settings, hosts):
        """Run the variant on ``hosts`` (the type's other hosts stopped); ``args_of`` None: as converged."""
        for host in self.hosts:
            if host not in hosts:
                self.bench.run(host, f"systemctl stop {self.unit}")
                continue
            if args_of is None:
                self.bench.run(host, f"rm -rf {self.dropin_dir} {self.config_file}")
            else:
                config = "from pyfleet_celeryconfig import *  # noqa\n" + "".join(
                    f"{k} = {v!r}\n" for k, v in settings.items()
                )
                dropin = "\n".join(
                    [
                        "[Service]",
                        "ExecStart=",
                        f"ExecStart=/srv/{APP}/current/venv/bin/celery --app {CELERY_APP} --config {CONFIG_MODULE} "
                        "worker --loglevel INFO $CELERY_WORKER_ARGS",
                        f'Environment="CELERY_WORKER_ARGS={shlex.join(args_of(self.args[host]))}"',
                        "",
                    ]
                )
                self.bench.run(host, f"install -o root -g app_{APP} -m 0640 /dev/stdin {self.config_file}", config)
                self.bench.run(host, f"mkdir -p {self.dropin_dir} && cat > {self.dropin_dir}/{DROPIN}", dropin)
            self.bench.run(host, f"systemctl daemon-reload && systemctl restart {self.unit}")
        return [f"{self.type}@{h}" for h in hosts]

    def restore(self):
        """Back to the converged units on every host."""
        for host in self.hosts:
            self.bench.run(
                host,
                f"rm -rf {self.dropin_dir} {self.config_file}; systemctl daemon-reload; systemctl restart {self.unit}",
            )


# --- the run -----------------------------------------------------------------------


def measure_variant(bench, workers, producer, broker, hosts, args_of, settings, opts):
    """The figures of one variant on ``hosts``."""
    nodes = workers.apply(args_of, settings, hosts)
    # Seconds from the producer's start (right after the restarts) until every node answers a ping.
    ready = bench.produce(producer, "ready", *nodes, queue=opts.queue)["waited_s"]
    units = {broker: ["redis-server.service"], **{h: [workers.unit] for h in hosts}}

    def parts(before, after):
        broker_s = after[(broker, "redis-server.service")] - before[(broker, "redis-server.service")]
        worker_s = sum(after[(h, workers.unit)] - before[(h, workers.unit)] for h in hosts)
        main_s = sum(
            after.get((h, workers.unit + " main"), 0) - before.get((h, workers.unit + " main"), 0) for h in hosts
        )
        return broker_s, worker_s, main_s

    figures = {"ready": ready, "serial": bench.produce(producer, "serial", opts.serial, queue=opts.queue)["per_s"]}
    before = bench.cpu(units)
    window = bench.produce(producer, "window", opts.count, opts.window, queue=opts.queue)
    after = bench.cpu(units)
    broker_s, worker_s, main_s = parts(before, after)
    figures.update(
        window=window["per_s"],
        producer_ms=window["producer_cpu_ms"],
        broker_ms=broker_s * 1000 / opts.count,
        worker_ms=worker_s * 1000 / opts.count,
        main_ms=main_s * 1000 / opts.count,
    )
    figures["fire"] = bench.produce(producer, "fire", opts.count, queue=opts.queue)["per_s"]
    before = bench.cpu(units)
    time.sleep(opts.idle)
    after = bench.cpu(units)
    broker_s, worker_s, _ = parts(before, after)
    figures.update(idle_broker=broker_s * 1000 / opts.idle, idle_worker=worker_s * 1000 / opts.idle)
    return figures


@contextmanager
def two_worker_hosts(inv, worker_type):
    """The inventory, grown by one worker host of ``worker_type`` while fewer than two run it."""
    hosts = [h for h in inv.groups.get("workers", []) if worker_type in (inv.hosts[h].get("celery_worker_types") or [])]
    if len(hosts) >= 2:
        yield inv
        return
    with tempfile.TemporaryDirectory() as tmp:
        grown = lab.grown_inventory(inv, tmp, EXTRA_HOST, "workers", {"celery_worker_types": [worker_type]})
        try:
            lab.up(inventory.load(grown), log=lambda *_: None)
            ansible.playbook(grown, "site", quiet=True)
            yield inventory.load(grown)
        finally:
            lab.remove_host(inv, EXTRA_HOST)


def row(label, hosts, f):
    return (
        f"  {label:52s} {hosts:>5d} {f['serial']:8.1f} {f['window']:8.1f} {f['fire']:8.1f} "
        f"{f['producer_ms']:6.2f} {f['broker_ms']:6.2f} {f['worker_ms']:6.2f} {f['main_ms']:6.2f} "
        f"{f['idle_worker']:6.1f} {f['idle_broker']:5.1f} {f['ready']:5.1f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventory/lab")
    parser.add_argument("--count", type=int, default=1000, help="tasks per throughput figure")
    parser.add_argument("--serial", type=int, default=200, help="tasks one at a time")
    parser.add_argument("--window", type=int, default=20, help="tasks in flight")
    parser.add_argument("--host", help="producer host (default: the first web host)")
    parser.add_argument("--type", default="default", help="worker type whose queue gets the tasks")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle CPU measured per variant")
    parser.add_argument("--quick", action="store_true", help="only the settings before and as converged")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over every variant; the best of each is shown")
    opts = parser.parse_args()
    started = time.monotonic()
    inv = inventory.load(opts.inventory)
    producer = opts.host or inv.groups["web"][0]
    broker = inv.groups["brokers"][0]
    with two_worker_hosts(inv, opts.type) as grown:
        bench = Lab(grown)
        hosts = [h for h in grown.groups["workers"] if opts.type in (grown.hosts[h].get("celery_worker_types") or [])]
        workers = Workers(bench, hosts, opts.type)
        opts.queue = re.search(r"--queues (\S+)", " ".join(workers.args[hosts[0]])).group(1).split(",")[0]
        raw = bench.produce(producer, "broker", opts.count)
        send = bench.produce(producer, "send", opts.count)
        best = {}  # (label, hosts) -> the figures of the round with the most round trips in flight
        try:
            for round_ in range(1, opts.rounds + 1):
                for label, args_of, settings, one_host_too in variants(opts.quick):
                    for on in ([hosts[:1]] if one_host_too else []) + [hosts]:
                        f = measure_variant(bench, workers, producer, broker, on, args_of, settings or {}, opts)
                        print(f"round {round_}" + row(label, len(on), f), file=sys.stderr, flush=True)
                        if f["window"] > best.get((label, len(on)), {"window": 0})["window"]:
                            best[(label, len(on))] = f
        finally:
            workers.restore()
        results = [(label, n, f) for (label, n), f in best.items()]
    print(f"Celery no-op tasks from {producer} to queue {opts.queue} ({opts.type} workers on {', '.join(hosts)}),")
    print(
        f"{opts.count} tasks per throughput figure, {opts.serial} one at a time, {opts.window} in flight, "
        f"best of {opts.rounds} rounds (other load on the machine only slows a figure down):"
    )
    print(f"  broker from {producer}: PING {raw['ping_us']:.0f} us, LPUSH+BRPOP {raw['push_pop_us']:.0f} us;")
    print(
        f"  Celery sends to an unconsumed queue: {send['pooled_per_s']:.0f}/s pooled connection, "
        f"{send['fresh_per_s']:.0f}/s a new connection each"
    )
    print(
        f"  {'worker settings':52s} {'hosts':>5s} {'1 at a':>8s} {f'{opts.window} in':>8s} {'fire and':>8s} "
        f"{'---- ms CPU per task ----':>27s} {'ms CPU/s idle':>12s} {'start':>5s}"
    )
    print(
        f"  {'':52s} {'':5s} {'time /s':>8s} {'flight/s':>8s} {'forget/s':>8s} "
        f"{'prod':>6s} {'redis':>6s} {'worker':>6s} {'main':>6s} {'worker':>6s} {'redis':>5s} {'s':>5s}"
    )
    for label, n, f in results:
        print(row(label, n, f))
    fleet(results, opts)
    print(f"bench took {time.monotonic() - started:.0f} s")


def fleet(results, opts):
    """Where a round trip's CPU goes, and what a fleet with each part on its own cores would carry."""
    by = {(label, n): f for label, n, f in results}
    converged = max((n, f) for (label, n), f in by.items() if label == "pyfleet as converged")[1]
    producer, broker, worker, main = (converged[k] for k in ("producer_ms", "broker_ms", "worker_ms", "main_ms"))
    total = producer + broker + worker
    print(
        f"  where a round trip's CPU goes (as converged): producer {producer:.2f} ms, Redis {broker:.2f} ms, "
        f"worker units {worker:.2f} ms (of which the consumer process {main:.2f} ms, the pool the rest):"
    )
    print(f"    {total:.1f} ms in all, so the lab's 2 shared cores carry at most {2000 / total:.0f}/s")
    print("  a real fleet, a worker process per core on hosts of their own, from the same CPU per task:")
    print(
        f"    one producer process {1000 / producer:.0f} round trips/s; Redis (one core) {1000 / broker:.0f}/s; "
        f"a worker host's consumer process {1000 / main:.0f}/s; each pool core {1000 / max(worker - main, 0.01):.0f}/s"
    )
    for cores in (2, 8):
        host = min(1000 / main, cores * 1000 / max(worker - main, 0.01))
        print(
            f"    2 worker hosts of {cores} cores: {2 * host:.0f}/s of worker capacity; from one producer "
            f"about {min(1000 / producer, 1000 / broker, 2 * host):.0f}/s (more producers: up to "
            f"{min(1000 / broker, 2 * host):.0f}/s)"
        )


if __name__ == "__main__":
    main()
