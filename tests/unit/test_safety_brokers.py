"""The broker configurations and the generated Celery settings, as the roles write them.

Rendered with Ansible's templating and pyfleet's filters (tests/unit/rendering.py):
a broker that listens only where it should, asks for a password, never drops a
queued task; Celery settings that lose no task when a worker or the broker dies.
"""

from rendering import fleet_plan, render


def settings(text, sep=" "):
    """{key: [values]} of a config file of ``key<sep>value`` lines (comments dropped)."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition(sep)
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def redis_conf(**variables):
    return settings(render("redis", "etc/redis/redis.conf.j2", "broker1", **variables))


REDIS = {
    "bind": ["10.0.0.5 127.0.0.1"],
    "protected-mode": ["yes"],
    "port": ["6379"],
    "tcp-backlog": ["511"],
    "timeout": ["0"],
    "tcp-keepalive": ["300"],
    "requirepass": ['"s3cret-for-tests"'],
    "enable-protected-configs": ["no"],
    "enable-debug-command": ["no"],
    "enable-module-command": ["no"],
    "daemonize": ["no"],
    "pidfile": ["/run/redis/redis-server.pid"],
    "loglevel": ["notice"],
    "logfile": ['""'],
    "databases": ["16"],
    "always-show-logo": ["no"],
    "set-proc-title": ["yes"],
    "maxmemory-policy": ["noeviction"],
    "dir": ["/var/lib/redis"],
    "dbfilename": ["dump.rdb"],
    "save": ["3600 1", "300 100", "60 10000"],
    "stop-writes-on-bgsave-error": ["yes"],
    "rdbcompression": ["yes"],
    "rdbchecksum": ["yes"],
    "appendonly": ["yes"],
    "appendfilename": ['"appendonly.aof"'],
    "appenddirname": ['"appendonlydir"'],
    "appendfsync": ["everysec"],
    "no-appendfsync-on-rewrite": ["no"],
    "auto-aof-rewrite-percentage": ["100"],
    "auto-aof-rewrite-min-size": ["64mb"],
    "aof-load-truncated": ["yes"],
    "aof-use-rdb-preamble": ["yes"],
}


def test_redis_config_is_exactly_the_brokers():
    # Every line is a decision (README Reliability): none may go missing or change unnoticed.
    assert redis_conf() == REDIS


def test_redis_listens_privately_and_asks_for_the_password():
    conf = redis_conf()
    assert conf["bind"] == ["10.0.0.5 127.0.0.1"]
    assert conf["protected-mode"] == ["yes"]
    assert conf["port"] == ["6379"]
    assert conf["requirepass"] == ['"s3cret-for-tests"']
    for command in ("enable-protected-configs", "enable-debug-command", "enable-module-command"):
        assert conf[command] == ["no"], command
    assert conf["timeout"] == ["0"]
    assert conf["tcp-keepalive"] == ["300"]


def test_redis_never_evicts_and_keeps_what_it_was_given():
    conf = redis_conf()
    assert conf["maxmemory-policy"] == ["noeviction"]
    assert "maxmemory" not in conf  # "0": no limit line at all
    assert conf["appendonly"] == ["yes"]
    assert conf["appendfsync"] == ["everysec"]
    assert conf["save"] == ["3600 1", "300 100", "60 10000"]
    assert conf["stop-writes-on-bgsave-error"] == ["yes"]
    assert conf["dir"] == ["/var/lib/redis"]
    assert conf["daemonize"] == ["no"]  # systemd supervises it
    assert conf["logfile"] == ['""']  # to the journal
    assert conf["databases"] == ["16"]
    assert conf["aof-load-truncated"] == ["yes"]
    assert conf["aof-use-rdb-preamble"] == ["yes"]
    assert conf["no-appendfsync-on-rewrite"] == ["no"]
    assert conf["rdbchecksum"] == ["yes"]


def test_redis_memory_limit_and_persistence_follow_the_settings():
    conf = redis_conf(redis_maxmemory="512mb", redis_appendonly=False)
    assert conf["maxmemory"] == ["512mb"]
    assert conf["maxmemory-policy"] == ["noeviction"]
    assert conf["appendonly"] == ["no"]


def rabbitmq_conf(**variables):
    text = render(
        "rabbitmq", "etc/rabbitmq/rabbitmq.conf.j2", "broker1", pyfleet_plan=fleet_plan("rabbitmq"), **variables
    )
    return settings(text, sep="=")


def test_rabbitmq_listens_privately_without_guest():
    conf = rabbitmq_conf()
    assert conf["listeners.tcp.1"] == ["10.0.0.5:5672"]
    assert conf["listeners.tcp.2"] == ["127.0.0.1:5672"]
    assert conf["distribution.listener.interface"] == ["127.0.0.1"]
    assert conf["loopback_users.guest"] == ["true"]


def test_rabbitmq_consumer_timeout_outlasts_the_longest_task():
    plan = fleet_plan("rabbitmq")
    conf = rabbitmq_conf()
    (timeout,) = conf["consumer_timeout"]
    assert int(timeout) == plan["celery"]["consumer_timeout"] * 1000  # milliseconds
    assert int(timeout) > plan["celery"]["longest_time_limit"] * 1000
    assert rabbitmq_conf(rabbitmq_consumer_timeout=7200)["consumer_timeout"] == ["7200000"]


def test_rabbitmq_limits_and_logs():
    conf = rabbitmq_conf()
    assert conf["vm_memory_high_watermark.relative"] == ["0.4"]
    assert conf["disk_free_limit.absolute"] == ["1GB"]
    assert conf["log.console"] == ["true"]
    assert conf["log.console.level"] == ["info"]
    assert conf["log.file"] == ["false"]


def celery_settings(monkeypatch, worker_type=""):
    """The generated settings module, executed as Celery imports it on a worker of ``worker_type``."""
    text = render("celery_worker", "srv/app/shared/celery/pyfleet_celeryconfig.py.j2", "worker1")
    monkeypatch.setenv("PYFLEET_CELERY_WORKER_TYPE", worker_type)
    namespace = {}
    exec(compile(text, "pyfleet_celeryconfig.py", "exec"), namespace)
    return namespace


def test_celery_settings_lose_no_task(monkeypatch):
    conf = celery_settings(monkeypatch, "default")
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    # The broker re-delivers an unacked task only after the longest time limit plus 30 s.
    # A task whose worker died comes back at most 10 s after the timeout (kombu scans at every look).
    # A connection to a broker that cannot be reached fails in 5 s: a worker's warm shutdown never hangs on it.
    assert conf["broker_transport_options"] == {
        "visibility_timeout": 630,
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 5,
    }
    assert conf["result_backend_transport_options"] == {"visibility_timeout": 630}
    assert conf["redis_socket_connect_timeout"] == 5
    assert conf["task_publish_retry_policy"]["max_retries"] >= 10
    assert conf["result_backend_always_retry"] is True
    assert conf["broker_connection_retry_on_startup"] is True


def test_celery_settings_route_and_schedule(monkeypatch):
    conf = celery_settings(monkeypatch)
    assert conf["task_default_queue"] == "default"
    assert conf["task_routes"] == {"proj.tasks.fetch": {"queue": "io"}}
    assert conf["beat_schedule"]["tick"]["task"] == "proj.tasks.tick"
    assert conf["beat_schedule"]["tick"]["schedule"] == 10.0
    assert conf["task_publish_retry_policy"] == {
        "max_retries": 10,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 2,
    }
    assert conf["result_backend_max_retries"] == 20
    # No STARTED state unless a worker type asks (another result write per task).
    assert conf["task_track_started"] is False
    # Flower is in the fleet: workers and producers send the events it shows.
    assert conf["worker_send_task_events"] is True
    assert conf["task_send_sent_event"] is True
    # Without a known worker type (a producer): the safe defaults.
    assert conf["task_acks_late"] is True
    assert conf["worker_prefetch_multiplier"] == 1
