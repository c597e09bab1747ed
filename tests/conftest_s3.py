"""Fixtures for tests that need an S3 server; test modules load them with
`pytest_plugins = ["tests.conftest_s3"]` (tests/conftest.py stays untouched)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup_engine.storage.s3 import S3Store
from tests.s3_server import ThrowawayS3


@pytest.fixture(scope="session")
def s3_server() -> Iterator[ThrowawayS3]:
    server = ThrowawayS3().start()
    yield server
    server.destroy()


@pytest.fixture
def s3_env(s3_server: ThrowawayS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS_* variables of the throwaway server, set for this test (the store reads them)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    env = s3_server.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def make_s3_store(s3_env: dict[str, str], s3_server: ThrowawayS3, tmp_path: Path):
    """Factory: an S3Store under a fresh prefix of the throwaway bucket (client from the AWS_* variables)."""

    def make(**options) -> S3Store:
        return S3Store(s3_server.bucket, f"t-{uuid.uuid4().hex[:12]}", scratch_dir=tmp_path / "scratch", **options)

    return make
