#!/bin/sh
# Rendered by `flightdelay stack compose` from flightdelay.stack: do not edit.
set -eu
esc() { printf '%s' "$1" | sed 's/[\\:]/\\&/g'; }
storage="/var/lib/pgadmin/storage/$(printf '%s' "$PGADMIN_DEFAULT_EMAIL" | tr '@' '_')"
mkdir -p "$storage"
umask 077
cat > "$storage/pgpass" <<EOF
postgres:5432:*:$(esc "${POSTGRES_READONLY_USER}"):$(esc "${POSTGRES_READONLY_PASSWORD}")
EOF
cat > /var/lib/pgadmin/servers.json <<EOF
{
  "Servers": {
    "1": {
      "Name": "flightdelay features",
      "Group": "flightdelay",
      "Host": "postgres",
      "Port": 5432,
      "MaintenanceDB": "${POSTGRES_FEATURES_DB}",
      "Username": "${POSTGRES_READONLY_USER}",
      "SSLMode": "prefer",
      "PassFile": "/pgpass"
    },
    "2": {
      "Name": "mlflow backend",
      "Group": "flightdelay",
      "Host": "postgres",
      "Port": 5432,
      "MaintenanceDB": "${POSTGRES_MLFLOW_DB}",
      "Username": "${POSTGRES_READONLY_USER}",
      "SSLMode": "prefer",
      "PassFile": "/pgpass"
    }
  }
}
EOF
export PGADMIN_SERVER_JSON_FILE=/var/lib/pgadmin/servers.json
exec /entrypoint.sh "$@"
