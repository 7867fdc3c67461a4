"""pyfleet: deploy Python web apps and Celery workers to your own servers with Ansible."""
