"""Celery tasks of the public contract (`backups.*`) and the plain operations behind them."""
