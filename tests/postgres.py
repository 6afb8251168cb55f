"""The PostgreSQL server of the distributed tests (127.0.0.1:5432, trust auth): fresh databases, dropped after.

Without a server the tests skip with a reason, except under CI=true, where its absence is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest

SERVER = "postgresql://postgres@127.0.0.1:5432"


def admin(sql: str) -> None:
    """Run one statement on the server's `postgres` database, outside a transaction."""
    connection = psycopg2.connect(f"{SERVER}/postgres", connect_timeout=3)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(sql)
    connection.close()


@contextmanager
def databases(*kinds: str) -> Iterator[list[str]]:
    """One fresh database per kind, as URLs; skips (fails under CI) without a server; drops them at the end."""
    try:
        admin("select 1")
    except psycopg2.OperationalError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is required under CI: {err}")
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {err}")
    names = [f"test_{uuid.uuid4().hex[:10]}_{kind}" for kind in kinds]
    for name in names:
        admin(f"create database {name}")
    try:
        yield [f"{SERVER}/{name}" for name in names]
    finally:
        for name in names:
            admin(f"drop database if exists {name} with (force)")
