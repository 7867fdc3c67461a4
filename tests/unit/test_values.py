"""pyfleet.values: the type checks behind the inventory's one-line errors (apps, catalogue, flower, workers)."""

from collections import OrderedDict

import pytest

from pyfleet import values
from pyfleet.errors import PyfleetError


@pytest.mark.parametrize(
    "value, expected",
    [(3, True), (0, True), (-2, True), (True, False), (False, False), (3.0, False), ("3", False), (None, False)],
)
def test_is_int_counts_integers_not_yaml_booleans(value, expected):
    assert values.is_int(value) is expected


class Text(str):
    """Ansible hands over subclasses (AnsibleUnicode, AnsibleMapping...)."""


@pytest.mark.parametrize(
    "value, kind",
    [
        (True, "a boolean"),
        (False, "a boolean"),
        (3, "a number"),
        (2.5, "a number"),
        ("x", "a string"),
        (Text("x"), "a string"),
        ({}, "a mapping"),
        (OrderedDict(a=1), "a mapping"),
        ([], "a list"),
        ((1,), "a list"),
        (None, "nothing"),
        ({1}, "set"),
    ],
)
def test_kind_of_names_the_yaml_type_never_the_value(value, kind):
    assert values.kind_of(value) == kind


def test_unknown_key_suggests_the_closest_allowed_key_and_lists_them_sorted():
    assert values.unknown_key({"queues": 1, "concurency": 2}, ["queues", "concurrency", "beat"]) == (
        "concurency",
        "did you mean concurrency? allowed keys: beat, concurrency, queues",
    )


def test_unknown_key_reports_the_first_in_sorted_order_and_no_hint_without_a_close_match():
    assert values.unknown_key({"zzz": 1, "qqq": 2}, ["beat", "queues"]) == ("qqq", "allowed keys: beat, queues")


def test_unknown_key_is_none_when_every_key_is_allowed():
    assert values.unknown_key({}, ["a"]) is None
    assert values.unknown_key({"a": 1, "b": 2}, ["b", "a"]) is None


def test_unknown_keys_error_names_where_the_key_and_the_fix():
    with pytest.raises(PyfleetError) as caught:
        values.unknown_keys("celery_worker_catalogue.default", {"queus": []}, ["queues", "concurrency"])
    assert str(caught.value) == (
        "celery_worker_catalogue.default.queus: unknown key; did you mean queues? allowed keys: concurrency, queues"
    )
    values.unknown_keys("x", {"queues": []}, ["queues"])  # no error


@pytest.mark.parametrize("value", [True, False])
def test_boolean_returns_a_yaml_boolean(value):
    assert values.boolean("celery_flower", None, value) is value


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("beat", "yes", "app shop.celery.beat: 'yes' is not true or false; write true or false"),
        ("beat", 1, "app shop.celery.beat: 1 is not true or false; write true or false"),
        (None, "no", "app shop.celery: 'no' is not true or false; write true or false"),
        ("", None, "app shop.celery: None is not true or false; write true or false"),
    ],
)
def test_boolean_refuses_anything_else_with_one_line(key, value, expected):
    with pytest.raises(PyfleetError) as caught:
        values.boolean("app shop.celery", key, value)
    assert str(caught.value) == expected
