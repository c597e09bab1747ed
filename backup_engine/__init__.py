"""The backup engine: plain Python that takes, checks and restores backups.

It never imports Celery; the `tasks` package and the CLI's `--local` mode call it.
"""
