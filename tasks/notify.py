"""Telling people: failures (after the last retry), failed verify drills and stale targets, through
Apprise (`BACKUP_NOTIFY_URLS`; `BACKUP_NOTIFY_ON=all` for successes too).

A message names the target, the operation, the reason, the file and the worker's host; it never
holds a password or a URL's credentials (the reason is the engine's own message, which already
names targets by name, and anything shaped like `scheme://user:secret@` is masked once more here).
A notification that cannot be delivered is logged and never fails the work it reports on.
"""

from __future__ import annotations

import logging
import re
import socket

from config.settings import Settings

logger = logging.getLogger(__name__)
CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")
TITLE = "backup worker: {operation} of {target} {outcome}"


def masked(text: str) -> str:
    """`scheme://user:secret@host` as `scheme://***@host`."""
    return CREDENTIALS_IN_URL.sub(r"\g<scheme>***@", text)


def message(operation: str, target: str, outcome: str, reason: str | None, file: str | None) -> tuple[str, str]:
    lines = [f"operation: {operation}", f"target: {target}", f"outcome: {outcome}", f"worker: {socket.gethostname()}"]
    if file:
        lines.append(f"file: {file}")
    if reason:
        lines.append(f"reason: {reason}")
    return masked(TITLE.format(operation=operation, target=target, outcome=outcome)), masked("\n".join(lines))


def notify(settings: Settings, operation: str, target: str, outcome: str, reason: str | None = None,
           file: str | None = None) -> bool:
    """Send to every configured URL; True when it went out (or there was nothing to send)."""
    if not settings.notify_urls or (outcome == "success" and settings.notify_on != "all"):
        return True
    title, body = message(operation, target, outcome, reason, file)
    try:
        import apprise

        sender = apprise.Apprise()
        for url in settings.notify_urls:
            sender.add(url)
        delivered = bool(sender.notify(title=title, body=body))
    except Exception as exc:  # noqa: BLE001 - a notification never fails the work it reports on
        logger.warning("notification not delivered (%s)", type(exc).__name__)
        return False
    if not delivered:
        logger.warning("notification not delivered to every URL of BACKUP_NOTIFY_URLS")
    return delivered
