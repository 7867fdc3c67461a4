"""Every bad inventory of the corpus ends in its one line, in every command that reads it, before any host.

In-process: the command's function in tasks.py runs as `fab` runs it (``friendly``
turns a PyfleetError into ``error: <line>``); ansible-inventory really reads the
inventory (once per case). Anything but that line (a traceback, a success, a
host reached) fails the case.
"""

import pytest
from badinput_cases import CASES
from badinput_harness import run_command

from pyfleet.sandbox import RELAXABLE
from pyfleet.shell import ROOT


def _params():
    for case in CASES:
        for command in case.commands:
            marks = [pytest.mark.xfail(strict=True, reason=case.reason)] if case.xfail else []
            yield pytest.param(case, command, id=f"{case.id}[{command}]", marks=marks)


def expected_line(case, directory):
    text = case.expected.replace("{inv}", str(directory)).replace("{root}", str(ROOT))
    return "error: " + text.replace("{relaxable}", ", ".join(RELAXABLE))


@pytest.mark.parametrize("case, command", list(_params()))
def test_bad_inventory_is_one_line_before_any_host(case, command, make_inventory, guard, cached_load, tmp_path):
    directory = make_inventory(case.id, case.mutate)
    line = run_command(command, directory, tmp_path)
    assert line == expected_line(case, directory)
    assert "\n" not in line
    assert guard == [], f"reached the hosts: {guard}"


def test_the_corpus_is_large_and_every_id_unique():
    assert len(CASES) >= 50
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_base_inventory_is_valid_and_reaches_the_hosts_only_through_the_guard(
    make_inventory, guard, cached_load, tmp_path
):
    """The corpus's base (the lab plus loopback addresses) passes every check: each case's error is its mutation's."""
    directory = make_inventory("base")
    assert run_command("topology", directory, tmp_path) is None
    assert run_command("check", directory, tmp_path) == "error: reached the hosts: ansible-playbook site"
    assert guard == ["ansible-playbook site --check --diff"]
    guard.clear()
