"""Errors that pyfleet reports to users as one line, without a traceback."""


class PyfleetError(Exception):
    """A user mistake or an environment fault, explained in one line: what, where, and the fix."""
