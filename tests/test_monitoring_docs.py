"""docs/monitoring cannot rot: every alert and dashboard expression names metrics the exporter serves.

The exporter runs for real (`python -m worker metrics --once` over a store holding a backup, a
verify record and a failure record), its page is read with prometheus-client's parser, and each
PromQL expression's metric names and label names are checked against what it served.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import clean_environment
from tests.test_operations import run_cli

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "docs" / "monitoring"
PROMETHEUS_OWN = {"up"}
PROMQL_WORDS = {"and", "or", "unless", "on", "ignoring", "by", "without", "group_left", "group_right", "bool",
                "offset", "time", "max", "min", "sum", "avg", "count", "max_over_time", "min_over_time", "rate",
                "increase", "changes", "absent", "e", "inf", "nan"}
IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def expressions() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    found = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    found += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return found


def names_in(expression: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) of one of our own PromQL expressions: strings and durations
    dropped, identifiers inside `{...}`, `by (...)` and `on (...)` read as labels."""
    text = re.sub(r'"[^"]*"', '""', expression)
    text = re.sub(r"\[[^\]]*\]", "", text)
    labels: set[str] = set()
    for group in re.findall(r"\{([^}]*)\}|(?:by|on|without|ignoring)\s*\(([^)]*)\)", text):
        for part in group:
            labels |= set(IDENTIFIER.findall(part))
    text = re.sub(r"\{[^}]*\}|(?:by|on|without|ignoring)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$labels\.\w+", " ", text)
    metrics = {word for word in IDENTIFIER.findall(text) if word not in PROMQL_WORDS and not word[0].isdigit()}
    return metrics, labels


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> dict[str, set[str]]:
    tmp = tmp_path_factory.mktemp("monitoring")
    database = tmp / "app.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    env = clean_environment(BACKUP_DATABASE_URL=f"sqlite:///{database}", BACKUP_DIR=str(tmp / "backups"),
                            BACKUP_UPLOAD_DIR=str(tmp / "uploads"), BACKUP_TASK_MAX_RETRIES="0")
    made = run_cli(env, tmp, "backup", "--local")
    assert made.returncode == 0, made.stderr
    assert run_cli(env, tmp, "verify", json.loads(made.stdout)["backup_filename"], "--local").returncode == 0
    assert run_cli(env, tmp, "restore", "no_such_backup.sql", "--local").returncode == 1
    page = run_cli(env, tmp, "metrics", "--once")
    assert page.returncode == 0, page.stderr
    families: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(page.stdout):
        for sample in family.samples:
            families.setdefault(sample.name, set()).update(sample.labels)
    return families


def test_the_exporter_serves_the_documented_metrics(served):
    documented = set(re.findall(r"`(backup_worker_\w+)`", (MONITORING / "README.md").read_text()))
    assert documented == set(served)


@pytest.mark.parametrize("expression", expressions())
def test_every_expression_names_served_metrics_and_labels(expression, served):
    metrics, labels = names_in(expression)
    assert metrics, f"no metric found in {expression!r}"
    unknown = metrics - set(served) - PROMETHEUS_OWN
    assert not unknown, f"{expression!r} names metrics the exporter does not serve: {sorted(unknown)}"
    known_labels = set().union(*(served[name] for name in metrics if name in served)) | {"job", "instance"}
    assert labels <= known_labels, f"{expression!r} uses labels never served: {sorted(labels - known_labels)}"


def test_the_reader_finds_what_it_should():
    """The reader itself can fail: a misspelt metric and a label of another metric are caught."""
    metrics, labels = names_in('backup_worker_stal{target="a"} > on (format) backup_worker_backups')
    assert metrics == {"backup_worker_stal", "backup_worker_backups"} and labels == {"target", "format"}
