"""The pyfleet_accounts action: one getent call decides, the group and user modules run only for what differs."""

import pytest
from plugin_module import load

action = load("plugins/action/pyfleet_accounts.py")

# Real output of `getent group hello www-data; echo ==; getent passwd hello www-data` on a lab web host.
GETENT = (
    "hello:x:998:www-data\n"
    "www-data:x:33:\n"
    "==\n"
    "hello:x:998:998::/srv/hello:/usr/sbin/nologin\n"
    "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
)
GROUPS, USERS = action.parse_getent(GETENT)
APP_USER = {
    "name": "hello",
    "group": "hello",
    "system": True,
    "shell": "/usr/sbin/nologin",
    "home": "/srv/hello",
    "create_home": False,
}
NGINX = {"name": "www-data", "groups": ["hello"], "append": True}


def test_getent_output_is_read_as_groups_and_users():
    assert GROUPS == {"hello": {"gid": "998", "members": ["www-data"]}, "www-data": {"gid": "33", "members": []}}
    assert USERS["hello"] == {"uid": "998", "gid": "998", "home": "/srv/hello", "shell": "/usr/sbin/nologin"}
    assert action.parse_getent("==\n") == ({}, {})


@pytest.mark.parametrize(
    ("args", "settled"),
    [
        ({"name": "hello", "system": True}, True),
        ({"name": "hello"}, True),
        ({"name": "celery", "system": True}, False),  # missing: the module creates it
        ({"name": "hello", "gid": 1001}, False),  # not read by the check
        ({"name": "hello", "state": "absent"}, False),
    ],
)
def test_a_group_is_settled_when_it_exists_and_nothing_else_is_asked(args, settled):
    assert action.group_settled(args, GROUPS) is settled


@pytest.mark.parametrize(
    ("args", "settled"),
    [
        (APP_USER, True),
        ({**APP_USER, "group": "998"}, True),
        (NGINX, True),
        ({**NGINX, "groups": "hello"}, True),
        ({**APP_USER, "name": "worker"}, False),  # missing
        ({**APP_USER, "group": "www-data"}, False),  # another primary group
        ({**APP_USER, "group": "nogroup"}, False),  # a group getent did not list
        ({**APP_USER, "home": "/srv/other"}, False),
        ({**APP_USER, "shell": "/bin/bash"}, False),
        ({**NGINX, "groups": ["hello", "worker"]}, False),  # not yet in worker
        ({**NGINX, "append": False}, False),  # the exact set: the module compares
        ({**APP_USER, "uid": 1500}, False),  # not read by the check
        ({**APP_USER, "state": "absent"}, False),
    ],
)
def test_a_user_is_settled_only_when_what_is_asked_is_what_getent_shows(args, settled):
    assert action.user_settled(args, GROUPS, USERS) is settled


def test_the_getent_call_names_each_account_by_name_once():
    users = [APP_USER, {**NGINX, "groups": "hello,worker"}, {"name": "x", "group": "1000"}]
    assert action.names(users, "group", "groups") == ["hello", "worker"]  # a gid needs no lookup
    assert action.names(users, "name") == ["hello", "www-data", "x"]
