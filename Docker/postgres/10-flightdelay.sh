#!/bin/sh
# Rendered by `flightdelay stack compose` from flightdelay.stack: do not edit.
# The databases, the read-only role and its grants (the list the native stack runs).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "postgres" <<'SQL'
\getenv owner POSTGRES_USER
\getenv reader POSTGRES_READONLY_USER
\getenv reader_password POSTGRES_READONLY_PASSWORD
\getenv db POSTGRES_MLFLOW_DB
CREATE DATABASE :"db";
\getenv db POSTGRES_FEATURES_DB
CREATE DATABASE :"db";
\getenv db POSTGRES_MLFLOW_AUTH_DB
CREATE DATABASE :"db";
CREATE ROLE :"reader" LOGIN PASSWORD :'reader_password';
\getenv db POSTGRES_MLFLOW_DB
REVOKE TEMPORARY ON DATABASE :"db" FROM PUBLIC;
REVOKE TEMPORARY ON DATABASE :"db" FROM :"reader";
\getenv db POSTGRES_FEATURES_DB
REVOKE TEMPORARY ON DATABASE :"db" FROM PUBLIC;
REVOKE TEMPORARY ON DATABASE :"db" FROM :"reader";
\getenv db POSTGRES_MLFLOW_AUTH_DB
REVOKE TEMPORARY ON DATABASE :"db" FROM PUBLIC;
REVOKE TEMPORARY ON DATABASE :"db" FROM :"reader";
\set db postgres
REVOKE TEMPORARY ON DATABASE :"db" FROM PUBLIC;
REVOKE TEMPORARY ON DATABASE :"db" FROM :"reader";
\set db template1
REVOKE TEMPORARY ON DATABASE :"db" FROM PUBLIC;
REVOKE TEMPORARY ON DATABASE :"db" FROM :"reader";
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_MLFLOW_DB" <<'SQL'
\getenv owner POSTGRES_USER
\getenv reader POSTGRES_READONLY_USER
\getenv reader_password POSTGRES_READONLY_PASSWORD
\getenv db POSTGRES_MLFLOW_DB
GRANT CONNECT ON DATABASE :"db" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
REVOKE SELECT ON ALL TABLES IN SCHEMA public FROM :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public REVOKE SELECT ON TABLES FROM :"reader";
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_FEATURES_DB" <<'SQL'
\getenv owner POSTGRES_USER
\getenv reader POSTGRES_READONLY_USER
\getenv reader_password POSTGRES_READONLY_PASSWORD
\getenv db POSTGRES_FEATURES_DB
GRANT CONNECT ON DATABASE :"db" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader";
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_MLFLOW_AUTH_DB" <<'SQL'
\getenv owner POSTGRES_USER
\getenv reader POSTGRES_READONLY_USER
\getenv reader_password POSTGRES_READONLY_PASSWORD
\getenv db POSTGRES_MLFLOW_AUTH_DB
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"db" FROM :"reader";
SQL
