"""pyfleet's sample app: WSGI (Flask), ASGI (plain) and Celery tasks for deploy tests."""

from sampleapp.version import VERSION

__all__ = ["VERSION"]
