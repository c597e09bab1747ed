"""`DatabaseURL` reads and writes a URL exactly as SQLAlchemy's `make_url` does, which stays the
oracle here: the targets' URLs are a public contract, read by SQLAlchemy before this module."""

from __future__ import annotations

import string
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from backup_engine.database_url import DatabaseURL
from backup_engine.targets import Target, mask_url

# What people put in URLs, raw or percent-encoded: the grammar's own separators most of all.
SEPARATORS = ":/@?&=#[]%+ "
PIECE = st.text(alphabet=st.sampled_from(string.ascii_letters[:6] + string.digits[:3] + SEPARATORS + "é_.-"),
                max_size=8)
ENCODED = PIECE.map(lambda text: quote(text, safe=""))
SCHEME = st.sampled_from(["postgresql", "postgresql+psycopg2", "mysql+pymysql", "sqlite", "mariadb", "redis"])


@st.composite
def urls(draw) -> str:
    """A URL assembled part by part, each part present or not, raw or encoded."""
    text = draw(SCHEME) + "://"
    if draw(st.booleans()):
        text += draw(st.one_of(PIECE, ENCODED))
        if draw(st.booleans()):
            text += ":" + draw(st.one_of(PIECE, ENCODED))
        text += "@"
    text += draw(st.sampled_from(["", "localhost", "127.0.0.1", "[::1]", "[fe80::1%25eth0]", "db.example"]))
    if draw(st.booleans()):
        text += ":" + draw(st.sampled_from(["5432", "", "0", "x1", " 7"]))
    if draw(st.booleans()):
        text += "/" + draw(st.one_of(PIECE, ENCODED, st.just("/abs/path.db"), st.just(":memory:")))
    if draw(st.booleans()):
        pairs = draw(st.lists(st.tuples(st.sampled_from(["sslmode", "host", "a", "password", "ssl_ca"]),
                                        st.one_of(PIECE, ENCODED)), max_size=4))
        text += "?" + "&".join(f"{key}={value}" for key, value in pairs)
    return text


def _sqlalchemy_reading(text: str):
    try:
        return make_url(text)
    except Exception:  # noqa: BLE001 - SQLAlchemy raises ArgumentError, ValueError
        return None


def _check_same(text: str) -> None:
    expected = _sqlalchemy_reading(text)
    if expected is None:
        with pytest.raises(ValueError):
            DatabaseURL.parse(text)
        return
    ours = DatabaseURL.parse(text)
    assert (ours.drivername, ours.username, ours.password, ours.host, ours.port, ours.database) == (
        expected.drivername, expected.username, expected.password, expected.host, expected.port, expected.database)
    assert ours.query == dict(expected.query)
    assert ours.get_backend_name() == expected.get_backend_name()
    for hide in (True, False):
        assert ours.render_as_string(hide_password=hide) == expected.render_as_string(hide_password=hide)
    assert str(ours) == str(expected)
    if ours.query:
        replaced = {next(iter(ours.query)): "***"}
        assert ours.with_query_values(replaced).render_as_string() == \
            expected.update_query_dict(replaced).render_as_string()
    assert ours.set(database="other").render_as_string(False) == expected.set(database="other").render_as_string(False)


@settings(max_examples=600, deadline=None)
@given(urls())
def test_a_url_is_read_and_written_as_sqlalchemy_does(text):
    _check_same(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_is_read_or_refused_as_sqlalchemy_does(text):
    _check_same(text)


@pytest.mark.parametrize("text", [
    "postgresql://u:p%40ss%3Aw%2Fd@h:5432/db?sslmode=require&sslmode=verify-full",
    "postgresql://u:pa#ss@h/db",  # a raw '#' is part of the password, not a fragment
    "postgresql://u:p@x@h/db",
    "sqlite:///relative.db", "sqlite:////abs/path.db", "sqlite://", "sqlite:///:memory:",
    "mysql+pymysql://root@[::1]:3306/app?unix_socket=/run/mysqld.sock",
    "postgresql:///db?host=/var/run/postgresql",
    "postgresql://h:notaport/db", "not a url", "",
])
def test_the_awkward_cases_read_as_sqlalchemy_reads_them(text):
    _check_same(text)


def test_the_password_never_shows():
    url = DatabaseURL.parse("postgresql://u:s3cret@h/db")
    assert "s3cret" not in repr(url) and "s3cret" not in str(url)
    target = Target.from_url("t", "postgresql://u:s3cret@h/db")
    assert "s3cret" not in repr(target) and "s3cret" not in target.masked_url
    assert mask_url("redis://:s3cret@h:6379/0?token=abc") == "redis://:***@h:6379/0?token=%2A%2A%2A"
