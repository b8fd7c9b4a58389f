"""Clients of the native stack's Postgres and S3, for set-up, the doctor and tests."""

from __future__ import annotations

from typing import Any

from flightdelay.core.config import StackSettings


def pg_url(settings: StackSettings, db: str, driver: str = "postgresql+psycopg2") -> str:
    """The SQLAlchemy URL of one stack database (as the owner role; the password URL-quoted)."""
    from urllib.parse import quote

    pw = quote(settings.postgres_password.get_secret_value(), safe="")
    return f"{driver}://{settings.postgres_user}:{pw}@127.0.0.1:{settings.postgres_port}/{db}"


def pg_connect(
    settings: StackSettings, db: str, user: str | None = None, password: str | None = None
) -> Any:
    """An autocommit psycopg2 connection to one database (default: as the owner role)."""
    import psycopg2

    conn = psycopg2.connect(
        host="127.0.0.1",
        port=settings.postgres_port,
        user=user or settings.postgres_user,
        password=password or settings.postgres_password.get_secret_value(),
        dbname=db,
        connect_timeout=3,
    )
    conn.autocommit = True
    return conn


def s3_client(
    settings: StackSettings, endpoint: str | None = None, secret: str | None = None
) -> Any:
    """A boto3 S3 client for the stack (path-style, SigV4); default endpoint: through nginx."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint or f"http://127.0.0.1:{settings.nginx_s3_port}",
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=secret or settings.aws_secret_access_key.get_secret_value(),
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 2}
        ),
    )
