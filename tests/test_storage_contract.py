"""One suite of store behaviour, run against every store: a local folder and S3 (a real moto
server process). Where the stores differ by design (a clash at commit: the local store takes the
next name, S3 refuses with NameTaken), the test says so."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from backup_engine import errors
from backup_engine.storage import open_store
from backup_engine.storage.base import NameTaken, Store
from backup_engine.storage.local import TEMP_PREFIX, LocalStore
from backup_engine.storage.s3 import S3Store
from tests.processes import ROOT, ManagedProcess, clean_environment
from tests.s3_server import SECRET_KEY, CuttingProxy, ThrowawayS3

pytest_plugins = ["tests.conftest_s3"]

PART = 8 * 1024  # tiny S3 parts, so that a few hundred KiB is a real multipart upload


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "store", scratch_dir=tmp_path / "scratch")
    return request.getfixturevalue("make_s3_store")(part_size=PART)


def leftovers(store: Store) -> list[str]:
    """What dead or unfinished writers left: temp files, or incomplete multipart uploads."""
    if isinstance(store, LocalStore):
        return sorted(p.name for p in store.folder.glob(TEMP_PREFIX + "*")) if store.folder.exists() else []
    reply = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix + "/")
    return sorted(upload["Key"] for upload in reply.get("Uploads", []))


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def write_chunks(writer, data: bytes, seed: int = 1) -> None:
    rnd, view, position = random.Random(seed), memoryview(data), 0
    while position < len(data):
        step = rnd.randint(1, 40_000)
        writer.write(view[position:position + step])
        position += step


def read_all(store: Store, name: str) -> bytes:
    with store.open(name) as handle:
        chunks = []
        while chunk := handle.read(7777):
            chunks.append(chunk)
    return b"".join(chunks)


def test_write_commit_read_back(store: Store) -> None:
    data = payload(300_000)
    with store.create(iter(["a.sql", "a_2.sql"])) as writer:
        write_chunks(writer, data)
        assert writer.size == len(data)
        assert not store.exists("a.sql"), "an object is invisible until commit"
        assert "a.sql" not in [info.name for info in store.list()]
        assert writer.commit() == "a.sql"
    assert store.exists("a.sql")
    assert read_all(store, "a.sql") == data
    [info] = [info for info in store.list() if info.name == "a.sql"]
    assert info.size == len(data) and info.modified.tzinfo is not None
    assert store.location("a.sql").endswith("/a.sql")
    assert leftovers(store) == []


def test_empty_object(store: Store) -> None:
    with store.create(iter(["empty.sql"])) as writer:
        assert writer.commit() == "empty.sql"
    assert read_all(store, "empty.sql") == b""
    assert store.read("empty.sql", 0) == b""


def test_taken_name_at_start_gets_the_next(store: Store) -> None:
    store.put("b.sql", b"first")
    with store.create(iter(["b.sql", "b_2.sql", "b_3.sql"])) as writer:
        writer.write(b"second")
        assert writer.commit() == "b_2.sql"
    assert store.read("b.sql", 100) == b"first"


def test_clash_at_commit_never_overwrites(store: Store) -> None:
    """Two writers open for the same name: the first commit wins; the second takes the next name
    (local: publishing picks the name) or is refused with NameTaken (S3: the key is bound at start)."""
    first, second = store.create(iter(["c.sql", "c_2.sql"])), store.create(iter(["c.sql", "c_2.sql"]))
    write_chunks(first, payload(50_000, seed=1))
    write_chunks(second, payload(50_000, seed=2))
    assert first.commit() == "c.sql"
    if isinstance(store, LocalStore):
        assert second.commit() == "c_2.sql"
    else:
        with pytest.raises(NameTaken):
            second.commit()
        assert not store.exists("c_2.sql")
    assert read_all(store, "c.sql") == payload(50_000, seed=1)
    assert leftovers(store) == []


def test_put_never_overwrites_replace_does(store: Store) -> None:
    store.put("m.meta.json", b'{"v": 1}')
    with pytest.raises(NameTaken):
        store.put("m.meta.json", b'{"v": 2}')
    assert store.read("m.meta.json", 100) == b'{"v": 1}'
    store.replace("status.json", b"one")
    store.replace("status.json", b"two")
    assert store.read("status.json", 100) == b"two"


def test_read_is_capped_and_missing_objects_are_artifact_errors(store: Store) -> None:
    store.put("small.json", b"x" * 100)
    assert store.read("small.json", 100) == b"x" * 100
    with pytest.raises(errors.ArtifactError, match=errors.OBJECT_TOO_LARGE):
        store.read("small.json", 99)
    for call in (lambda: store.read("missing.json", 10), lambda: store.open("missing.json")):
        with pytest.raises(errors.ArtifactError, match=errors.BACKUP_NOT_FOUND):
            call()
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(errors.InvalidRequest):
            store.read(bad, 10)


def test_abort_leaves_nothing(store: Store) -> None:
    writer = store.create(iter(["d.sql"]))
    write_chunks(writer, payload(100_000))
    assert leftovers(store), "a multipart upload or temp file is under way"
    writer.abort()
    writer.abort()  # idempotent
    assert not store.exists("d.sql") and leftovers(store) == []
    with pytest.raises(RuntimeError), store.create(iter(["e.sql"])) as writer:
        write_chunks(writer, payload(100_000))
        raise RuntimeError("the dump failed")
    assert not store.exists("e.sql") and leftovers(store) == []
    assert [info.name for info in store.list()] == []


def test_delete(store: Store) -> None:
    store.put("f.sql", b"data")
    store.delete("f.sql")
    assert not store.exists("f.sql")
    store.delete("f.sql")  # missing: not an error


def test_list_shows_only_committed_plain_objects(store: Store) -> None:
    store.put("g.sql", b"g")
    unfinished = store.create(iter(["h.sql"]))
    write_chunks(unfinished, payload(60_000))
    if isinstance(store, LocalStore):
        (store.folder / "sub").mkdir()
        (store.folder / "sub" / "deeper.sql").write_bytes(b"x")
        (store.folder / "bad name.sql").write_bytes(b"x")
    else:
        raw = store.client
        raw.put_object(Bucket=store.bucket, Key=f"{store.prefix}/sub/deeper.sql", Body=b"x")
        raw.put_object(Bucket=store.bucket, Key=f"{store.prefix}/bad name.sql", Body=b"x")
        raw.put_object(Bucket=store.bucket, Key=f"{store.prefix}-sibling/g2.sql", Body=b"x")
    assert [info.name for info in store.list()] == ["g.sql"]
    unfinished.abort()


def test_list_pages_through_many_objects(store: Store) -> None:
    names = [f"obj_{i:04d}.sql" for i in range(1050)]  # over S3's 1,000 keys a page
    if isinstance(store, S3Store):
        for name in names:
            store.client.put_object(Bucket=store.bucket, Key=store.key(name), Body=b"")
    else:
        store.folder.mkdir(parents=True)
        for name in names:
            (store.folder / name).write_bytes(b"")
    assert sorted(info.name for info in store.list()) == names


def test_local_links_and_fifos_are_never_opened(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store", scratch_dir=tmp_path / "scratch")
    store.put("real.sql", b"real")
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the store")
    os.symlink(outside, store.folder / "link.sql")
    os.mkfifo(store.folder / "fifo.sql")
    os.mkfifo(store.folder / (TEMP_PREFIX + "planted.tmp"))
    os.symlink(outside, store.folder / (TEMP_PREFIX + "link.tmp"))
    result: dict = {}

    def attempt() -> None:  # on a thread: a FIFO that blocked would hang it, not the suite
        for name in ("link.sql", "fifo.sql"):
            for call in (store.open, lambda n: store.read(n, 100)):
                try:
                    call(name)
                    result[name] = "opened"
                except errors.BackupError as exc:
                    result.setdefault(name, type(exc).__name__)
        result["list"] = [info.name for info in store.list()]
        result["sweep"] = store.sweep(timedelta(0))

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "a FIFO or link blocked the store"
    assert result["link.sql"] != "opened" and result["fifo.sql"] != "opened"
    assert result["list"] == ["real.sql"] and result["sweep"] == []
    assert outside.read_text() == "not for the store"


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from backup_engine.storage.local import LocalStore
    from backup_engine.storage.s3 import S3Store
    kind, where, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
    if kind == "local":
        store = LocalStore(Path(where), scratch_dir=Path(where) / ".scratch")
    else:
        store = S3Store(where, prefix, scratch_dir=Path("/tmp"), part_size=8192)
    writer = store.create(iter(["dead.sql"]))
    for _ in range(10):
        writer.write(b"x" * 8192)
    print("ready", flush=True)
    time.sleep(600)
""")


def test_dead_writer_leaves_no_object_and_sweep_cleans_up(store: Store, tmp_path: Path) -> None:
    args = ["local", str(store.folder), ""] if isinstance(store, LocalStore) else ["s3", store.bucket, store.prefix]
    child = ManagedProcess([sys.executable, "-c", CHILD, *args], env=clean_environment(), cwd=ROOT,
                           log=tmp_path / "child.log").start()
    try:
        child.wait_for("ready", timeout=60)
    finally:
        child.kill(signal.SIGKILL)
    assert not store.exists("dead.sql")
    assert "dead.sql" not in [info.name for info in store.list()]
    assert leftovers(store), "the killed writer left a temp file or an incomplete upload"

    live = store.create(iter(["live.sql"]))
    write_chunks(live, payload(40_000))
    store.sweep(timedelta(hours=1))  # the live writer's work is recent (and locked, locally): untouched
    assert live.commit() == "live.sql"
    assert read_all(store, "live.sql") == payload(40_000)

    removed = store.sweep(timedelta(0))
    assert leftovers(store) == []
    if isinstance(store, S3Store):
        assert removed == ["dead.sql"]
    assert not store.exists("dead.sql")
    assert [info.name for info in store.list()] == ["live.sql"]


# ---- S3 only -------------------------------------------------------------------------------

def test_s3_from_url_and_registry(s3_env: dict, s3_server: ThrowawayS3, tmp_path: Path) -> None:
    store = open_store(f"s3://{s3_server.bucket}/nightly/site-a/", scratch_dir=tmp_path / "scratch")
    assert isinstance(store, S3Store)
    assert store.url == f"s3://{s3_server.bucket}/nightly/site-a"
    assert store.location("x.sql") == f"s3://{s3_server.bucket}/nightly/site-a/x.sql"
    store.put("x.sql", b"x")
    assert s3_server.client().get_object(Bucket=s3_server.bucket, Key="nightly/site-a/x.sql")["Body"].read() == b"x"
    for url in ("s3://user:pw-secret@bucket/p", "s3://b/p", "s3:///p", "s3://bucket/../p", "s3://bucket/p?x=1"):
        with pytest.raises(errors.ConfigError) as caught:
            open_store(url, scratch_dir=tmp_path)
        assert "pw-secret" not in str(caught.value)


def test_s3_conditional_commit_alone_refuses_a_taken_key(make_s3_store) -> None:
    """Without the HEAD before commit, `If-None-Match: *` on PutObject and on
    CompleteMultipartUpload is what refuses (moto honours both, as S3 does)."""
    store = make_s3_store(part_size=PART, head_before_commit=False)
    for size in (100, 50_000):  # PutObject, then multipart
        name = f"k{size}.sql"
        writer = store.create(iter([name]))
        write_chunks(writer, payload(size, seed=1))
        store.put(name, b"the winner")
        with pytest.raises(NameTaken):
            writer.commit()
        assert store.read(name, 100) == b"the winner"
        assert leftovers(store) == []


def test_s3_retried_commit_that_met_its_own_success(make_s3_store) -> None:
    """A lost reply makes botocore retry; the retry finds the key taken by our own object."""
    store = make_s3_store(part_size=PART)
    for size in (100, 50_000):  # PutObject, then multipart
        name = f"r{size}.sql"
        writer = store.create(iter([name]))
        writer.write(payload(size))
        store.client.put_object(Bucket=store.bucket, Key=store.key(name), Body=payload(size),
                                Metadata={"bw-writer": writer._token})  # as if an earlier attempt had landed
        assert writer.commit() == name
        assert leftovers(store) == []


def test_s3_swept_upload_fails_the_writer(make_s3_store) -> None:
    store = make_s3_store(part_size=PART)
    writer = store.create(iter(["swept.sql"]))
    write_chunks(writer, payload(50_000))
    assert store.sweep(timedelta(0)) == ["swept.sql"]
    with pytest.raises(errors.StoreUnavailable) as caught:  # S3 says NoSuchUpload; moto fails with a 500
        writer.commit()
    assert caught.value.transient  # the task retries the whole backup
    assert not store.exists("swept.sql")


def test_s3_missing_bucket_is_a_configuration_error(s3_env: dict, tmp_path: Path) -> None:
    store = S3Store("no-such-bucket", "p", scratch_dir=tmp_path)
    with pytest.raises(errors.ConfigError, match=errors.STORE_BUCKET_MISSING):
        list(store.list())


def test_s3_server_down_is_transient_and_names_no_secret(s3_env: dict, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThrowawayS3(bucket="down").start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    store = S3Store("down", "p", scratch_dir=tmp_path)
    store.put("before.sql", b"x")
    server.kill()
    try:
        for call in (lambda: store.exists("x.sql"), lambda: store.put("y.sql", b"y"), lambda: list(store.list())):
            with pytest.raises(errors.StoreUnavailable) as caught:
                call()
            assert caught.value.transient
            assert SECRET_KEY not in str(caught.value) and SECRET_KEY not in repr(caught.value.__cause__)
    finally:
        server.destroy()


def test_s3_writer_memory_is_one_part(make_s3_store) -> None:
    """Parts past `memory_limit` go to an unlinked scratch file; the object comes back whole."""
    store = make_s3_store(part_size=PART, memory_limit=PART // 2)
    data = payload(5 * PART + 123)
    with store.create(iter(["spooled.sql"])) as writer:
        write_chunks(writer, data)
        assert writer.commit() == "spooled.sql"
    assert read_all(store, "spooled.sql") == data
    assert list(store.scratch_dir.iterdir()) == []


def test_s3_environment_is_read_from_aws_variables(s3_env: dict) -> None:
    """Nothing about the server is passed in code: the child sees only the AWS_* variables."""
    code = "from backup_engine.storage.s3client import make_client; print(make_client().meta.endpoint_url)"
    out = subprocess.run([sys.executable, "-c", code], env=clean_environment(), cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == s3_env["AWS_ENDPOINT_URL"]


def test_s3_download_resumes_after_a_dropped_connection(s3_env: dict, s3_server: ThrowawayS3, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = CuttingProxy(s3_server.port)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        store = S3Store(s3_server.bucket, "resume", scratch_dir=tmp_path, part_size=1 << 20)
        data = payload(3_000_000)
        with store.create(iter(["big.sql"])) as writer:
            writer.write(data)
            writer.commit()
        proxy.arm(cut_after=1_000_000)
        assert read_all(store, "big.sql") == data
        assert proxy.cuts == 1

        proxy.arm(cut_after=1_500_000)
        with store.open("big.sql") as handle:  # the object changes before a broken read resumes: refused
            handle.read(100_000)
            store.delete("big.sql")
            store.put("big.sql", payload(3_000_000, seed=9))
            with pytest.raises(errors.ArtifactError, match="changed while it was being read"):
                while handle.read(1 << 20):
                    pass
    finally:
        proxy.close()
