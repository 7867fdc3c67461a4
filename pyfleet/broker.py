"""The Celery broker: its kind, its one host, and how producers and workers reach it.

``pyfleet_broker_kind`` picks redis (the default) or rabbitmq; the broker group
must hold exactly one host; ``broker_address`` gives its private address and
port, ``broker_url`` and ``result_backend`` the Celery settings built on them.
"""

import difflib
from urllib.parse import quote

from pyfleet import addresses
from pyfleet.errors import PyfleetError
from pyfleet.values import is_int as _is_int

# pyfleet_broker_kind: the broker role the brokers play applies (redis is the default).
BROKER_KIND = "pyfleet_broker_kind"
BROKER_KINDS = ("redis", "rabbitmq")
# kind -> (the broker host's port variable, its default)
BROKER_PORTS = {"redis": ("redis_port", 6379), "rabbitmq": ("rabbitmq_port", 5672)}
RABBITMQ_PASSWORDS = "rabbitmq_passwords"
# With RabbitMQ, results travel back to the caller as AMQP messages: nothing to
# store, expire or secure besides the broker itself.
RABBITMQ_RESULT_BACKEND = "rpc://"


def broker_kind(kind):
    """``pyfleet_broker_kind`` checked: ``redis`` (the default, also when unset) or ``rabbitmq``."""
    if kind is None or kind == "":
        return "redis"
    if kind not in BROKER_KINDS:
        close = difflib.get_close_matches(str(kind), BROKER_KINDS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise PyfleetError(
            f"{BROKER_KIND}: {kind!r} is not one of {', '.join(BROKER_KINDS)}; "
            f"{hint}set {BROKER_KIND}: redis (the default) or rabbitmq"
        )
    return kind


def broker_url(brokers, hostvars, password, db=0, kind="redis", group="brokers", app=None):
    """The Celery broker URL of the one host in ``brokers`` (the group's members).

    The address is the broker host's ``pyfleet_private_address``, else its
    ``ansible_host``, else its name. ``kind`` is ``pyfleet_broker_kind``:

    - ``redis``: ``redis://:<password>@<address>:<redis_port>/<db>``, where
      ``password`` is ``redis_password``.
    - ``rabbitmq``: ``amqp://<app>:<password>@<address>:<rabbitmq_port>/<app>``:
      each Celery ``app`` has a vhost and a user of its own name (roles/rabbitmq),
      and ``password`` is its entry in ``rabbitmq_passwords``; ``db`` is unused.

    The password is percent-encoded, so any character is safe in it. Example::

        broker_url(["mq1"], {"mq1": {"pyfleet_private_address": "10.0.0.5"}}, "s3cret",
                   kind="rabbitmq", app="hello")   # amqp://hello:s3cret@10.0.0.5:5672/hello
    """
    kind = broker_kind(kind)
    host = broker_host_of({group: list(brokers or [])}, group)
    address, port = broker_address(host, hostvars, kind=kind)
    host_part = f"[{address}]" if ":" in address else address
    if kind == "rabbitmq":
        if not isinstance(app, str) or not app:
            raise PyfleetError(
                f"{BROKER_KIND}: rabbitmq gives each Celery app a vhost and user of its name, but no app of "
                "pyfleet_apps has celery: {app: ...}; add celery: {app: 'myapp.tasks:app'} to the app with the tasks"
            )
        if not isinstance(password, str) or not password:
            raise PyfleetError(
                f"{RABBITMQ_PASSWORDS}.{app}: not set for broker {host} (the password of RabbitMQ user {app}); "
                f"set {RABBITMQ_PASSWORDS}: {{{app}: ...}} from ansible-vault"
            )
        user, vhost = quote(app, safe=""), quote(app, safe="")
        return f"amqp://{user}:{quote(password, safe='')}@{host_part}:{port}/{vhost}"
    if not isinstance(password, str) or not password:
        raise PyfleetError(
            f"redis_password: not set for broker {host}; set it from ansible-vault (redis_password: ...)"
        )
    if not _is_int(db) or not 0 <= db <= 15:
        raise PyfleetError(f"broker database {db!r} is not 0..15; use db 0 for tasks and 1 for results")
    return f"redis://:{quote(password, safe='')}@{host_part}:{port}/{db}"


def result_backend(brokers, hostvars, password, kind="redis", group="brokers", app=None):
    """The default Celery result backend of ``pyfleet_broker_kind``.

    ``redis``: database 1 of the broker (``broker_url`` with ``db=1``).
    ``rabbitmq``: ``rpc://`` - results come back to the caller as AMQP
    messages over its broker connection (Celery's choice for RabbitMQ; only the
    caller can read a result). The broker settings are checked either way.
    """
    url = broker_url(brokers, hostvars, password, db=1, kind=kind, group=group, app=app)
    return RABBITMQ_RESULT_BACKEND if broker_kind(kind) == "rabbitmq" else url


def broker_address(host, hostvars, kind="redis"):
    """(address, port) the workers use to reach broker ``host``.

    The port is the host's ``redis_port`` (6379) or ``rabbitmq_port`` (5672),
    after ``kind``.
    """
    variable, default = BROKER_PORTS[broker_kind(kind)]
    port = addresses.host_vars(hostvars or {}, host).get(variable)
    return addresses.private_address(host, hostvars or {}), addresses.port(port, variable, host, default)


def broker_host_of(groups, broker_group):
    """The one host of the broker group."""
    brokers = groups.get(broker_group) or []
    if not brokers:
        raise PyfleetError(
            f"group {broker_group}: no broker host; add a host to group {broker_group} in the inventory (it runs redis)"
        )
    if len(brokers) > 1:
        raise PyfleetError(
            f"group {broker_group}: {len(brokers)} hosts ({', '.join(brokers)}) but pyfleet runs one broker; "
            f"keep one host in group {broker_group}"
        )
    return brokers[0]
