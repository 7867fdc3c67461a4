"""Unit tests for pyfleet.catalogue: worker type defaults, worker options, broker timeouts and every one-line error."""

import pytest
from celery_inventory import CATALOGUE, error, plan, with_type

from pyfleet import catalogue as cat
from pyfleet.catalogue import broker_chatter, normalize_catalogue, visibility_timeout, worker_args
from pyfleet.errors import PyfleetError

# --- defaults ----------------------------------------------------------------------------------


def test_stop_timeout_is_longer_than_the_hard_time_limit():
    for units in plan()["hosts"].values():
        for unit in units:
            assert unit["stop_timeout"] > unit["time_limit"]


def test_default_time_limit_applies():
    assert plan()["types"]["default"]["time_limit"] == 600


def test_no_lost_tasks_defaults():
    for spec in plan()["types"].values():
        assert spec["acks_late"] is True
        assert spec["reject_on_worker_lost"] is True
        assert spec["prefetch_multiplier"] == 1


def test_no_broker_chatter_defaults():
    # Gossip, mingle, heartbeat and the STARTED state cost CPU per worker and task
    # (bench/celery_roundtrip.py) and protect no task: off unless a type asks.
    for spec in plan()["types"].values():
        assert spec["track_started"] is False
        assert spec["gossip"] is False
        assert spec["mingle"] is False
        assert spec["heartbeat"] is None  # follows Flower
        assert broker_chatter(spec) == {"gossip": False, "mingle": False, "heartbeat": False}
        assert broker_chatter(spec, flower=True) == {"gossip": False, "mingle": False, "heartbeat": True}


@pytest.mark.parametrize(
    ("settings", "flower", "expected"),
    [
        ({"gossip": True}, False, ["--without-mingle", "--without-heartbeat"]),
        ({"mingle": True}, False, ["--without-gossip", "--without-heartbeat"]),
        ({"heartbeat": True}, False, ["--without-gossip", "--without-mingle"]),
        ({"heartbeat": False}, True, ["--without-gossip", "--without-mingle", "--without-heartbeat"]),
        ({}, True, ["--without-gossip", "--without-mingle"]),
        ({"gossip": True, "mingle": True, "heartbeat": True}, False, []),
    ],
)
def test_worker_args_broker_chatter_per_type(settings, flower, expected):
    spec = normalize_catalogue({"a": settings})["a"]
    args = worker_args("a@h", spec, flower=flower)
    assert [a for a in args if a.startswith("--without-")] == expected


def test_track_started_per_type():
    types = normalize_catalogue({"a": {"track_started": True}, "b": {}})
    assert types["a"]["track_started"] is True
    assert types["b"]["track_started"] is False
    # The safety settings stay as they were.
    assert types["a"]["acks_late"] is True and types["a"]["prefetch_multiplier"] == 1


def test_queues_default_to_the_type_name():
    assert normalize_catalogue({"mail": None})["mail"]["queues"] == ["mail"]


def test_solo_pool_runs_one_task():
    assert normalize_catalogue({"s": {"pool": "solo"}})["s"]["concurrency"] == 1


# --- broker timeouts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "expected"),
    [([60], 90), ([600, 60], 630), ([1800], 1830), ([3000, 10], 3030)],
)
def test_visibility_timeout_is_the_longest_limit_plus_a_margin(limits, expected):
    catalogue = {f"t{i}": {"time_limit": limit} for i, limit in enumerate(limits)}
    assert visibility_timeout(normalize_catalogue(catalogue)) == expected


def test_visibility_timeout_in_plan():
    # The default type sets no time limit: it gets DEFAULT_TIME_LIMIT (600).
    assert plan()["visibility_timeout"] == 630
    assert plan(catalogue=with_type("cpu", time_limit=7200, queues=["cpu"]))["visibility_timeout"] == 7230


def test_rabbitmq_consumer_timeout_stays_generous():
    # RabbitMQ re-delivers on a dropped connection; its timeout only catches a stuck consumer.
    assert plan()["consumer_timeout"] == 3600
    assert plan(catalogue=with_type("cpu", time_limit=5400, queues=["cpu"]))["consumer_timeout"] == 10800


# --- worker options ----------------------------------------------------------------------------


def test_worker_args_prefork():
    spec = normalize_catalogue(CATALOGUE)["cpu"]
    assert worker_args("cpu@w2", spec) == [
        "--hostname",
        "cpu@w2",
        "--queues",
        "cpu,cpu.bulk",
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        "-O",
        "fair",
        "--prefetch-multiplier",
        "1",
        "--time-limit",
        "60",
        "--soft-time-limit",
        "50",
        "--max-tasks-per-child",
        "100",
        "--max-memory-per-child",
        "262144",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def test_worker_args_threads_have_no_time_limit_or_fair():
    args = worker_args("io@w1", normalize_catalogue(CATALOGUE)["io"])
    assert "--time-limit" not in args and "-O" not in args
    assert args[args.index("--pool") + 1] == "threads"


def test_worker_args_autoscale():
    spec = normalize_catalogue({"a": {"autoscale": [8, 2]}})["a"]
    args = worker_args("a@h", spec)
    assert args[args.index("--autoscale") + 1] == "8,2"
    assert "--concurrency" not in args


def test_worker_args_without_concurrency_leave_celery_default():
    assert "--concurrency" not in worker_args("a@h", normalize_catalogue({"a": {}})["a"])


# --- one-line errors ---------------------------------------------------------------------------


def test_error_shared_queue():
    catalogue = with_type("io", pool="threads", queues=["default"])
    assert "queue default is already consumed by type default" in error(catalogue=catalogue)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"concurrency": 0}, "celery_worker_catalogue.io.concurrency: 0 is not an integer from 1 to 256"),
        ({"concurrency": 257}, "concurrency: 257 is not an integer from 1 to 256"),
        ({"concurrency": True}, "concurrency: True is not an integer"),
        ({"time_limit": 0}, "time_limit: 0 is not an integer from 1 to 604800"),
        ({"time_limit": 60, "soft_time_limit": 60}, "soft_time_limit: 60 is not below time_limit 60"),
        ({"soft_time_limit": 700}, "soft_time_limit: 700 is not below time_limit 600"),
        ({"prefetch_multiplier": 0}, "prefetch_multiplier: 0 is not an integer from 1 to 100"),
        ({"max_memory_per_child": 10}, "max_memory_per_child: 10 is not an integer from 1024"),
        ({"max_tasks_per_child": -1}, "max_tasks_per_child: -1 is not an integer"),
        ({"autoscale": [2, 8]}, "autoscale: [2, 8] is not [max, min] with 1 <= min <= max <= 256"),
        ({"autoscale": [8, 2], "concurrency": 2}, "concurrency and autoscale both set"),
        ({"pool": "threads", "autoscale": [8, 2]}, "only the prefork pool autoscales, not threads"),
        ({"pool": "threadz"}, "pool: 'threadz' is not one of prefork, threads, solo, gevent, eventlet"),
        ({"pool": "threads", "soft_time_limit": 5}, "the threads pool cannot interrupt a task"),
        (
            {"pool": "threads", "max_tasks_per_child": 5},
            "only prefork pool children are replaced, not threads",
        ),
        ({"pool": "solo", "concurrency": 4}, "the solo pool runs one task at a time"),
        ({"acks_late": False}, "reject_on_worker_lost: has no effect without acks_late"),
        ({"acks_late": "yes"}, "acks_late: 'yes' is not true or false"),
        ({"track_started": "on"}, "track_started: 'on' is not true or false"),
        ({"gossip": 1}, "gossip: 1 is not true or false"),
        ({"mingle": "no"}, "mingle: 'no' is not true or false"),
        ({"heartbeat": "yes"}, "heartbeat: 'yes' is not true or false"),
        ({"queues": []}, "queues: expected a list of queue names"),
        ({"queues": ["a b"]}, "queues: 'a b' is not a queue name"),
        ({"queues": ["io", "io"]}, "queues: a queue is listed twice"),
        ({"concurency": 2}, "celery_worker_catalogue.io.concurency: unknown key; did you mean concurrency?"),
    ],
)
def test_error_catalogue_values(settings, fragment):
    message = error(catalogue=with_type("io", **settings))
    assert fragment in message
    assert message.startswith("celery_worker_catalogue.io")


def test_error_catalogue_not_a_mapping():
    assert error(catalogue=["default"]).startswith("celery_worker_catalogue: expected a mapping of worker types")


def test_error_bad_type_name():
    catalogue = dict(CATALOGUE, **{"Big Type": {}})
    assert "'Big Type' is not a valid worker type name" in error(catalogue=catalogue)


# --- normalize_catalogue on its own: bounds, defaults and the whole one-line errors ----------


def one(**spec):
    return normalize_catalogue({"io": spec})["io"]


def refused(catalogue):
    with pytest.raises(PyfleetError) as caught:
        normalize_catalogue(catalogue)
    return str(caught.value)


def test_an_empty_type_consumes_its_own_queue_with_every_default():
    assert normalize_catalogue({"io": None})["io"] == {
        "queues": ["io"],
        "pool": "prefork",
        "concurrency": None,
        "autoscale": None,
        "prefetch_multiplier": 1,
        "soft_time_limit": None,
        "time_limit": 600,
        "max_tasks_per_child": None,
        "max_memory_per_child": None,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "track_started": False,
        "gossip": False,
        "mingle": False,
        "heartbeat": None,
        "stop_timeout": 630,
    }


@pytest.mark.parametrize(
    "spec, key, value",
    [
        ({"queues": "fast"}, "queues", ["fast"]),
        ({"autoscale": [1, 1]}, "autoscale", [1, 1]),
        ({"autoscale": [256, 1]}, "autoscale", [256, 1]),
        ({"autoscale": [3, 3]}, "autoscale", [3, 3]),
        ({"concurrency": "8"}, "concurrency", 8),
        ({"concurrency": 256}, "concurrency", 256),
        ({"pool": "solo", "concurrency": 1}, "concurrency", 1),
        ({"soft_time_limit": 1}, "soft_time_limit", 1),
        ({"max_tasks_per_child": 1}, "max_tasks_per_child", 1),
        ({"max_tasks_per_child": 10_000_000}, "max_tasks_per_child", 10_000_000),
        ({"max_memory_per_child": 64 * 1024 * 1024}, "max_memory_per_child", 64 * 1024 * 1024),
        ({"prefetch_multiplier": 4}, "prefetch_multiplier", 4),
        ({"acks_late": False, "reject_on_worker_lost": False}, "reject_on_worker_lost", False),
    ],
)
def test_the_edges_a_type_may_set(spec, key, value):
    assert one(**spec)[key] == value


@pytest.mark.parametrize(
    "catalogue, expected",
    [
        (
            {},
            "celery_worker_catalogue: expected a mapping of worker types, got a mapping; "
            "write celery_worker_catalogue: {default: {queues: [default], concurrency: 2}}",
        ),
        (
            {"IO": {}},
            "celery_worker_catalogue: 'IO' is not a valid worker type name (a lowercase letter, then up to "
            "30 of a-z 0-9 _ -); rename it, e.g. io",
        ),
        (
            {"a": {"queues": ["q"]}, "b": {"queues": ["q"]}},
            "celery_worker_catalogue.b.queues: queue q is already consumed by type a; give each type its own queues",
        ),
        ({"io": ["q"]}, "celery_worker_catalogue.io: expected a mapping, got a list; write io: {queues: [io]}"),
        (
            {"io": {"queues": {}}},
            "celery_worker_catalogue.io.queues: expected a list of queue names, got a mapping; write queues: [io]",
        ),
        (
            {"io": {"autoscale": [257, 1]}},
            "celery_worker_catalogue.io.autoscale: [257, 1] is not [max, min] with 1 <= min <= max <= 256; "
            "write autoscale: [8, 2]",
        ),
        (
            {"io": {"autoscale": [2, 3]}},
            "celery_worker_catalogue.io.autoscale: [2, 3] is not [max, min] with 1 <= min <= max <= 256; "
            "write autoscale: [8, 2]",
        ),
        (
            {"io": {"soft_time_limit": 0}},
            "celery_worker_catalogue.io.soft_time_limit: 0 is not an integer from 1 to 604800; "
            "set soft_time_limit: 1..604800",
        ),
        (
            {"io": {"time_limit": 25, "soft_time_limit": 25}},
            "celery_worker_catalogue.io.soft_time_limit: 25 is not below time_limit 25; "
            "set soft_time_limit below time_limit (e.g. 22)",
        ),
        (
            {"io": {"time_limit": 1, "soft_time_limit": 1}},
            "celery_worker_catalogue.io.soft_time_limit: 1 is not below time_limit 1; "
            "set soft_time_limit below time_limit (e.g. 1)",
        ),
        (
            {"io": {"max_tasks_per_child": 10_000_001}},
            "celery_worker_catalogue.io.max_tasks_per_child: 10000001 is not an integer from 1 to 10000000; "
            "set max_tasks_per_child: 1..10000000",
        ),
        (
            {"io": {"max_memory_per_child": 64 * 1024 * 1024 + 1}},
            "celery_worker_catalogue.io.max_memory_per_child: 67108865 is not an integer from 1024 to 67108864; "
            "set max_memory_per_child: 1024..67108864",
        ),
        (
            {"io": {"reject_on_worker_lost": "yes"}},
            "celery_worker_catalogue.io.reject_on_worker_lost: 'yes' is not true or false; write true or false",
        ),
        (
            {"io": {"acks_late": False}},
            "celery_worker_catalogue.io.reject_on_worker_lost: has no effect without acks_late; "
            "set acks_late: true or reject_on_worker_lost: false",
        ),
    ],
)
def test_catalogue_mistakes_are_one_whole_line(catalogue, expected):
    assert refused(catalogue) == expected


def test_broker_timeouts_without_types_follow_the_default_time_limit():
    assert visibility_timeout({}) == cat.DEFAULT_TIME_LIMIT + cat.VISIBILITY_MARGIN
    assert cat.consumer_timeout({}) == 3600
    assert cat.consumer_timeout({"a": {"time_limit": 2000}, "b": {"time_limit": 30}}) == 4000


def test_worker_args_of_an_autoscaled_type_with_events():
    spec = one(autoscale=[8, 2], max_tasks_per_child=100)
    assert worker_args("io@web1", spec, events=True) == [
        "--hostname",
        "io@web1",
        "--queues",
        "io",
        "--pool",
        "prefork",
        "--autoscale",
        "8,2",
        "-O",
        "fair",
        "--prefetch-multiplier",
        "1",
        "--time-limit",
        "600",
        "--max-tasks-per-child",
        "100",
        "--task-events",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
