"""Type checks shared by the inventory validators (apps, workers)."""


def is_int(value):
    """True for real integers (YAML's true/false are bools, not counts)."""
    return isinstance(value, int) and not isinstance(value, bool)


def kind_of(value):
    """A short description of a value's YAML type, for messages (never the value)."""
    # isinstance, not type(): Ansible hands over subclasses of dict, str, int...
    for types, name in (
        (bool, "a boolean"),
        ((int, float), "a number"),
        (str, "a string"),
        (dict, "a mapping"),
        ((list, tuple), "a list"),
        (type(None), "nothing"),
    ):
        if isinstance(value, types):
            return name
    return type(value).__name__
