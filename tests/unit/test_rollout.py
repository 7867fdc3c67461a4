"""pyfleet.rollout: web hosts in batches first, then worker hosts in waves that never hold two hosts of one type."""

from pyfleet import rollout

PLACEMENT = {
    "shop": {"web": ["web1", "web2"], "workers": ["worker1", "worker2", "worker3"]},
    "blog": {"web": ["web2", "aio1"], "workers": []},
}


def units(*types):
    return [{"type": t, "unit": f"pyfleet-shop-worker@{t}.service"} for t in types]


def test_hosts_of_different_worker_types_switch_in_one_wave():
    order = rollout.plan_rollout(
        ["web1", "web2", "worker1", "worker2"],
        PLACEMENT,
        {"worker1": units("default", "io"), "worker2": units("cpu")},
    )
    assert order == {"web": ["web1", "web2"], "workers": ["worker1", "worker2"], "worker_serial": [2]}


def test_two_hosts_of_one_type_never_share_a_wave_so_its_queue_keeps_a_consumer():
    order = rollout.plan_rollout(
        ["worker1", "worker2", "worker3"],
        PLACEMENT,
        {"worker1": units("default", "io"), "worker2": units("default"), "worker3": units("cpu", "io")},
    )
    # worker2 shares default with worker1, worker3 shares io with worker1: both wait
    # for the second wave, where they share nothing.
    assert order["workers"] == ["worker1", "worker2", "worker3"]
    assert order["worker_serial"] == [1, 2]
    assert order["web"] == []


def test_a_host_joins_the_first_wave_it_shares_no_type_with():
    waves = rollout.worker_waves(["a", "b", "c", "d"], {"a": ["x"], "b": ["x"], "c": ["y"], "d": ["x", "y"]})
    assert waves == [["a", "c"], ["b"], ["d"]]
    # A wave remembers the types of every host in it, not only the last one's.
    assert rollout.worker_waves(["a", "b", "c"], {"a": ["x"], "b": ["y"], "c": ["x"]}) == [["a", "b"], ["c"]]


def test_a_host_that_serves_an_app_goes_with_the_web_hosts_even_if_it_runs_workers():
    order = rollout.plan_rollout(
        ["aio1", "worker1"], PLACEMENT, {"aio1": units("default"), "worker1": units("default")}
    )
    assert order == {"web": ["aio1"], "workers": ["worker1"], "worker_serial": [1]}


def test_the_order_of_the_hosts_given_is_kept_and_hosts_without_types_share_the_first_wave():
    order = rollout.plan_rollout(["worker3", "web2", "worker1"], PLACEMENT, None)
    assert order == {"web": ["web2"], "workers": ["worker3", "worker1"], "worker_serial": [2]}


def test_no_host_switching_gives_two_empty_plays():
    assert rollout.plan_rollout([], PLACEMENT, {}) == {"web": [], "workers": [], "worker_serial": []}
