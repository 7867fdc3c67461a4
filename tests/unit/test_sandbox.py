"""The one sandbox of pyfleet's units: what a unit gets, and what relaxing takes away."""

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
