"""What an operator asks first: when did each database last get a good backup, and will I hear when it
fails. `status` prints a table per target; `metrics` serves the same facts as Prometheus gauges.

Both read the store (manifests, and the records every operation writes into it), so any number of
workers and exporters agree, whichever worker did the work.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from config.settings import Settings

SCRAPE_CACHE_S = 5.0
OPERATIONS = ("backup", "restore", "verify")


def _timestamp(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def next_run(settings: Settings) -> datetime:
    """When the schedule next dumps (UTC)."""
    from worker.schedule import as_crontab

    schedule = as_crontab(settings.schedule)
    now = datetime.now(UTC)
    moment = now + schedule.remaining_estimate(now)
    return (moment + timedelta(seconds=30)).replace(second=0, microsecond=0)  # Celery's estimate is a second early


def status(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per target: its newest good backup and age, size, last verify, last failure, next run."""
    from tasks.operations import target_states

    upcoming = next_run(settings).isoformat(timespec="seconds")
    report: dict[str, dict[str, Any]] = {}
    for name, state in target_states(settings).items():
        latest = state["latest"]
        failures = {op: record for op, record in state["failures"].items() if record is not None}
        last_failure = max(failures.values(), key=lambda record: record.moment, default=None)
        report[name] = {
            "newest_backup": latest.backup_filename if latest else None,
            "newest_at": latest.created_at if latest else None,
            "age_h": round(state["age_h"], 2) if state["age_h"] is not None else None,
            "size_bytes": latest.size_bytes if latest else None,
            "kept": state["kept"],
            "last_verify": state["verified"].at if state["verified"] else None,
            "last_failure": ({"operation": last_failure.operation, "at": last_failure.at,
                              "reason": last_failure.reason} if last_failure else None),
            "stale": state["stale"],
            "next_run": upcoming,
        }
    return report


def status_table(report: dict[str, dict[str, Any]]) -> str:
    """The report as a plain text table, one line per target."""
    header = ("target", "newest backup", "age h", "size", "kept", "last verify", "last failure", "stale", "next run")
    rows = [header]
    for name, item in report.items():
        failure = item["last_failure"]
        rows.append((name, item["newest_backup"] or "-", "-" if item["age_h"] is None else f"{item['age_h']:.1f}",
                     "-" if item["size_bytes"] is None else str(item["size_bytes"]), str(item["kept"]),
                     item["last_verify"] or "-", f"{failure['operation']} {failure['at']}" if failure else "-",
                     "yes" if item["stale"] else "no", item["next_run"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


class StoreCollector:
    """A Prometheus collector that reads the store on each scrape (cached a few seconds)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cached: tuple[float, list[Any]] = (0.0, [])

    def collect(self) -> Iterator[Any]:
        now = time.monotonic()
        if now - self._cached[0] > SCRAPE_CACHE_S:
            self._cached = (now, list(self._families()))
        yield from self._cached[1]

    def _families(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from tasks.operations import target_states

        def gauge(name: str, text: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, labels=labels)

        success = gauge("backup_worker_last_success_timestamp_seconds", "Newest backup, by format",
                        ["target", "format"])
        size = gauge("backup_worker_last_backup_size_bytes", "Size of the newest backup", ["target", "format"])
        duration = gauge("backup_worker_last_backup_duration_seconds", "How long the newest backup took",
                         ["target", "format"])
        failure = gauge("backup_worker_last_failure_timestamp_seconds", "Last final failure",
                        ["target", "operation"])
        verified = gauge("backup_worker_last_verify_success_timestamp_seconds", "Last verify drill that passed",
                         ["target"])
        kept = gauge("backup_worker_backups", "Backups kept", ["target"])
        stale = gauge("backup_worker_stale", "1 when the newest backup is older than BACKUP_STALE_AFTER_H",
                      ["target"])
        for name, state in target_states(self.settings).items():
            for fmt, manifest in state["by_format"].items():
                success.add_metric([name, fmt], manifest.created.timestamp())
                size.add_metric([name, fmt], manifest.size_bytes)
                duration.add_metric([name, fmt], manifest.duration_s)
            for operation in OPERATIONS:
                record = state["failures"].get(operation)
                failure.add_metric([name, operation], record.moment.timestamp() if record else 0)
            verified.add_metric([name], state["verified"].moment.timestamp() if state["verified"] else 0)
            kept.add_metric([name], state["kept"])
            stale.add_metric([name], 1 if state["stale"] else 0)
        yield from (success, size, duration, failure, verified, kept, stale)


def metrics_text(settings: Settings) -> bytes:
    """The metrics page once, as the exporter serves it."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(StoreCollector(settings))
    return generate_latest(registry)


def serve_metrics(settings: Settings, addr: str, port: int) -> None:
    """Prometheus text at http://addr:port/metrics until interrupted."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    registry.register(StoreCollector(settings))
    server, thread = start_http_server(port, addr=addr, registry=registry)
    print(json.dumps({"metrics": f"http://{addr}:{server.server_port}/metrics"}), flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()
