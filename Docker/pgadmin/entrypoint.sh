#!/bin/sh
# pgAdmin container start: register both databases (servers.json) and the read-only role's
# passfile from the environment, so pgAdmin opens already connected; then pgAdmin's own entrypoint.
set -eu
storage="/var/lib/pgadmin/storage/$(echo "$PGADMIN_DEFAULT_EMAIL" | tr '@' '_')"
mkdir -p "$storage"
printf 'postgres:5432:*:%s:%s\n' "$POSTGRES_READONLY_USER" "$POSTGRES_READONLY_PASSWORD" > "$storage/pgpass"
chmod 600 "$storage/pgpass"
cat > /var/lib/pgadmin/servers.json <<JSON
{"Servers": {
  "1": {"Name": "flightdelay features", "Group": "flightdelay", "Host": "postgres", "Port": 5432,
        "MaintenanceDB": "$POSTGRES_FEATURES_DB", "Username": "$POSTGRES_READONLY_USER", "SSLMode": "prefer",
        "PassFile": "/pgpass"},
  "2": {"Name": "mlflow backend", "Group": "flightdelay", "Host": "postgres", "Port": 5432,
        "MaintenanceDB": "$POSTGRES_MLFLOW_DB", "Username": "$POSTGRES_READONLY_USER", "SSLMode": "prefer",
        "PassFile": "/pgpass"}
}}
JSON
export PGADMIN_SERVER_JSON_FILE=/var/lib/pgadmin/servers.json
exec /entrypoint.sh "$@"
