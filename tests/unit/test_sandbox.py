"""The one sandbox of pyfleet's units: what a unit gets, and what relaxing takes away."""

from test_safety_units import HARDENING

from pyfleet import sandbox


def test_full_sandbox_lines():
    lines = sandbox.directives(read_write=["/srv/hello/shared"], ip_allow=["localhost", "10.89.0.5"])
    assert lines[0] == "ReadWritePaths=/srv/hello/shared"
    assert "ProtectSystem=strict" in lines
    assert "CapabilityBoundingSet=" in lines
    assert lines.count("SystemCallFilter=@system-service") == 1
    assert "SystemCallFilter=~@privileged @resources" in lines
    assert lines[-2:] == ["SystemCallErrorNumber=EPERM", "IPAddressAllow=localhost 10.89.0.5"]
    assert "IPAddressDeny=any" in lines


def test_extra_syscall_groups_follow_the_filter():
    lines = sandbox.directives(syscalls=["@chown"])
    assert lines.index("SystemCallFilter=@chown") > lines.index("SystemCallFilter=~@privileged @resources")


def test_relaxed_option_is_left_out_with_its_reason():
    lines = sandbox.directives(relax=[{"option": "MemoryDenyWriteExecute", "reason": "cffi callbacks"}])
    assert not any(line.startswith("MemoryDenyWriteExecute=") for line in lines)
    assert lines[-1] == "# Relaxed for this app: MemoryDenyWriteExecute (cffi callbacks)."


def test_relaxing_the_ip_allow_list_lifts_the_deny_list_too():
    lines = sandbox.directives(
        relax=[{"option": "IPAddressAllow", "reason": "talks to an API"}], ip_allow=["localhost"]
    )
    assert not any(line.startswith(("IPAddressAllow=", "IPAddressDeny=")) for line in lines)


def test_relaxing_the_syscall_filter_drops_its_error_number_and_extras():
    lines = sandbox.directives(relax=[{"option": "SystemCallFilter", "reason": "x"}], syscalls=["@chown"])
    assert not any(line.startswith(("SystemCallFilter=", "SystemCallErrorNumber=")) for line in lines)


# The hardening lines are test_safety_units.py's list, written out there (not read from pyfleet/sandbox.py).
EXPECTED = [
    "ReadWritePaths=/srv/a/shared",
    "ReadWritePaths=/srv/a/run",
    *HARDENING,
    "SystemCallFilter=@chown",
    "SystemCallErrorNumber=EPERM",
    "IPAddressAllow=localhost 10.0.0.5",
]


def test_the_whole_sandbox_of_a_unit_line_by_line():
    lines = sandbox.directives(
        read_write=["/srv/a/shared", "/srv/a/run"], ip_allow=["localhost", "10.0.0.5"], syscalls=["@chown"]
    )
    assert lines == EXPECTED


def test_relaxing_takes_away_only_the_options_named_and_says_each_reason():
    relax = [{"option": "ProtectHome", "reason": "reads ~/.cache"}, {"option": "UMask", "reason": "shared files"}]
    lines = sandbox.directives(relax=relax, ip_allow=["localhost"])
    kept = [line for line in EXPECTED[2:] if not line.startswith(("ProtectHome=", "UMask=", "SystemCallFilter=@chown"))]
    assert lines == [
        *kept[:-1],
        "IPAddressAllow=localhost",
        "# Relaxed for this app: ProtectHome (reads ~/.cache).",
        "# Relaxed for this app: UMask (shared files).",
    ]


def test_relaxing_the_deny_list_alone_leaves_no_allow_list():
    lines = sandbox.directives(relax=[{"option": "IPAddressDeny", "reason": "x"}], ip_allow=["localhost"])
    assert not any(line.startswith(("IPAddressAllow=", "IPAddressDeny=")) for line in lines)
    assert "SystemCallErrorNumber=EPERM" in lines


def test_every_relaxable_option_is_an_option_or_the_allow_list():
    assert tuple(sorted([*sandbox.OPTIONS, "IPAddressAllow"])) == sandbox.RELAXABLE
