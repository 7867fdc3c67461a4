"""Unit tests for the pyfleet_htpasswd filter: nginx password lines, stable, checked."""

from pathlib import Path

import bcrypt
import pytest
from ansible.errors import AnsibleFilterError
from plugin_module import load

ROOT = Path(__file__).resolve().parents[2]
_module = load("plugins/filter/pyfleet_htpasswd.py")
htpasswd = _module.pyfleet_htpasswd

USERS = [{"name": "ops", "password": "s3cret"}, {"name": "dev.team", "password": "other"}]


def test_one_bcrypt_line_per_user_that_checks_the_password():
    lines = htpasswd(USERS, "flower.lab.test", cost=4)
    assert [line.split(":", 1)[0] for line in lines] == ["ops", "dev.team"]
    for line, user in zip(lines, USERS, strict=True):
        hashed = line.split(":", 1)[1].encode()
        assert hashed.startswith(b"$2b$04$")
        assert bcrypt.checkpw(user["password"].encode(), hashed)
        assert not bcrypt.checkpw(b"wrong", hashed)


def test_same_input_same_lines_so_a_second_converge_changes_nothing():
    assert htpasswd(USERS, "flower.lab.test", cost=4) == htpasswd(USERS, "flower.lab.test", cost=4)


def test_salt_differs_per_user_and_realm():
    same = [{"name": "a", "password": "p"}, {"name": "b", "password": "p"}]
    a, b = (line.split(":", 1)[1] for line in htpasswd(same, "x.test", cost=4))
    assert a != b
    assert htpasswd(same, "x.test", cost=4) != htpasswd(same, "y.test", cost=4)


def test_a_new_password_gives_a_new_line():
    changed = [{"name": "ops", "password": "new"}]
    assert htpasswd(changed, "flower.lab.test", cost=4) != htpasswd(USERS[:1], "flower.lab.test", cost=4)


def test_the_default_cost_is_8():
    assert htpasswd(USERS[:1], "flower.lab.test")[0].split(":", 1)[1].startswith("$2b$08$")


@pytest.mark.parametrize(
    ("users", "message"),
    [
        ([], "expected a non-empty list"),
        (["ops:s3cret"], "user #0 is not a mapping"),
        ([{"name": "a:b", "password": "s3cret"}], "user #0 has no valid, unique name"),
        ([{"name": "ops", "password": "s3cret"}] * 2, "user #1 has no valid, unique name"),
        ([{"name": "ops", "password": ""}], "user #0 (ops) has no password"),
        ([{"name": "ops", "password": "s" * 73}], "user #0 (ops): the password is longer than 72 bytes"),
    ],
)
def test_bad_users_fail_without_printing_the_password(users, message):
    with pytest.raises(AnsibleFilterError) as caught:
        htpasswd(users, "flower.lab.test", cost=4)
    assert message in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_password_of_72_bytes_is_the_longest_taken():
    [line] = htpasswd([{"name": "ops", "password": "é" * 36}], "flower.lab.test", cost=4)
    assert bcrypt.checkpw(("é" * 36).encode(), line.split(":", 1)[1].encode())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"realm": ""}, "pyfleet_htpasswd: realm must be a non-empty string, e.g. the domain"),
        ({"realm": 5}, "pyfleet_htpasswd: realm must be a non-empty string, e.g. the domain"),
        ({"cost": 3}, "pyfleet_htpasswd: cost 3 is not an integer from 4 to 14"),
        ({"cost": 15}, "pyfleet_htpasswd: cost 15 is not an integer from 4 to 14"),
        ({"cost": "8"}, "pyfleet_htpasswd: cost '8' is not an integer from 4 to 14"),
        ({"cost": True}, "pyfleet_htpasswd: cost True is not an integer from 4 to 14"),
        ({"users": None}, "pyfleet_htpasswd: expected a non-empty list of {name, password}"),
    ],
)
def test_bad_arguments_are_one_line_naming_the_argument(kwargs, message):
    args = {"users": USERS, "realm": "flower.lab.test", "cost": 4, **kwargs}
    with pytest.raises(AnsibleFilterError) as caught:
        htpasswd(**args)
    assert str(caught.value) == message


def test_the_highest_cost_is_taken():
    assert htpasswd(USERS[:1], "flower.lab.test", cost=14)[0].split(":", 1)[1].startswith("$2b$14$")


def test_without_bcrypt_on_the_controller_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(_module, "bcrypt", None)
    with pytest.raises(AnsibleFilterError) as caught:
        htpasswd(USERS, "flower.lab.test", cost=4)
    assert str(caught.value) == (
        "pyfleet_htpasswd: the bcrypt Python package is missing on the controller; pip install bcrypt"
    )
