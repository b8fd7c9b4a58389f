"""Reading schema.sql: executed in SQLite and reflected, so real SQL names work."""

from __future__ import annotations

import pytest

from flightdelay.core.db import read_schema, read_sql, split_statements, strip_comments
from flightdelay.core.errors import UserError

QUOTED = """
-- a comment with a ; and a 'quote'
CREATE TABLE "order" (
    "default" TEXT NOT NULL,   /* reserved words, quoted */
    "Amount" DOUBLE PRECISION,
    "select" INTEGER,
    note VARCHAR(20) DEFAULT 'a;b',
    placed   TIMESTAMP   WITH TIME ZONE,
    PRIMARY KEY ("default")
);
CREATE UNIQUE INDEX order_note ON "order" (note);
create table lines ("order" TEXT REFERENCES "order" ("default"), qty BIGINT NOT NULL);
"""


def test_quoted_reserved_and_capitalised_names() -> None:
    schema = read_schema(QUOTED)
    assert list(schema.tables) == ["order", "lines"]
    cols = {c.name: c for c in schema.tables["order"].columns}
    assert list(cols) == ["default", "Amount", "select", "note", "placed"]
    assert [c.kind for c in cols.values()] == ["text", "float", "int", "text", "timestamp"]
    assert not cols["default"].nullable and cols["Amount"].nullable
    assert len(schema.statements) == 3


def test_the_shipped_schema_reads() -> None:
    schema = read_schema(read_sql("schema.sql"))
    assert list(schema.tables) == ["airlines", "airports", "planes", "weather", "flights"]
    weather = {c.name: c for c in schema.tables["weather"].columns}
    assert weather["time_hour"].kind == "timestamp" and not weather["time_hour"].nullable


def test_statements_split_outside_quotes_and_comments() -> None:
    sql = "SELECT ';' AS a; -- x; y\nSELECT \"b;\" /* ; */ FROM t;"
    assert split_statements(sql) == ["SELECT ';' AS a", 'SELECT "b;"   FROM t']
    assert ":n" not in strip_comments("SELECT 1 -- :n\n")


def test_unquoted_capitals_are_an_error() -> None:
    with pytest.raises(UserError, match=r'schema.sql: column DepTime .* write "DepTime"'):
        read_schema("CREATE TABLE f (DepTime INTEGER);")
    with pytest.raises(UserError, match=r"schema.sql: table Flights"):
        read_schema("CREATE TABLE Flights (x INTEGER);")


@pytest.mark.parametrize("sql_type", ["REAL", "NUMERIC(10, 2)", "BOOLEAN", "DATE", "BLOB", ""])
def test_types_that_differ_between_engines_are_refused(sql_type: str) -> None:
    with pytest.raises(UserError, match=r"schema.sql: t.x has type .*use one of TEXT"):
        read_schema(f"CREATE TABLE t (x {sql_type});")


def test_syntax_error_names_the_statement() -> None:
    with pytest.raises(UserError) as err:
        read_schema("CREATE TABLE a (x INTEGER);\nCREATE TABLE b (y INTEGER,, z TEXT);")
    msg = str(err.value)
    assert msg.startswith("schema.sql statement 2 (CREATE TABLE b (y INTEGER,, z TEXT))")
    assert "syntax error" in msg and "\n" not in msg


def test_only_create_statements() -> None:
    with pytest.raises(UserError, match=r"statement 2 .*only CREATE TABLE and CREATE INDEX"):
        read_schema("CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);")
    with pytest.raises(UserError, match="no CREATE TABLE"):
        read_schema("-- nothing\n")
