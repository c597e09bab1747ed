"""The throwaway servers are real, private and can be broken on purpose."""

from __future__ import annotations

import psycopg2
import pytest
import redis


def test_postgres_needs_the_password_and_restarts(pg_server):
    conn = pg_server.connect()
    with conn.cursor() as cur:
        cur.execute("select current_user")
        assert cur.fetchone()[0] == pg_server.superuser
    conn.close()
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host=pg_server.host, port=pg_server.port, user=pg_server.superuser,
                         password="wrong", dbname="postgres")
    assert pg_server.port != 5432
    pg_server.restart()
    pg_server.connect().close()


def test_redis_is_on_its_own_port(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    assert client.ping()
    assert redis_server.port != 6379
