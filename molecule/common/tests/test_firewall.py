"""What the firewall role leaves on a host: nftables loads pyfleet's table now and at boot."""


def test_inbound_is_dropped_unless_a_rule_accepts_it(host):
    chain = host.check_output("nft list chain inet pyfleet input")
    assert "policy drop;" in chain
    assert "ct state established,related accept" in chain
    assert "tcp dport 22 accept" in chain
    assert "ip saddr 10.0.0.1 tcp dport 80 accept" in chain
    # Nothing else is open.
    assert chain.count(" accept") == 5, chain  # established, lo, icmp, 22 and 80
    assert "dport 443" not in chain


def test_the_ruleset_is_loaded_at_boot(host):
    assert host.service("nftables").is_enabled
    assert host.file("/etc/nftables.conf").contains("table inet pyfleet")


def test_reloading_leaves_other_tables_alone(host):
    host.check_output("nft add table inet othertool")
    try:
        host.check_output("nft -f /etc/nftables.conf")
        assert "table inet othertool" in host.check_output("nft list tables")
        assert "policy drop;" in host.check_output("nft list chain inet pyfleet input")
    finally:
        host.run("nft delete table inet othertool")
