"""The Celery application, its beat schedule, and the `python -m worker` command line."""
