#!/bin/sh
# Rendered by `flightdelay stack compose` from flightdelay.stack: do not edit.
set -eu
umask 077
mkdir -p /prometheus/config
printf '%s' "${MLFLOW_TRACKING_PASSWORD}" > /prometheus/config/mlflow.password
user="$(printf '%s' "${MLFLOW_TRACKING_USERNAME}" | sed 's/[\\&|]/\\&/g')"
sed "s|[$]{MLFLOW_TRACKING_USERNAME}|$user|" /etc/prometheus/prometheus.compose.yml > /prometheus/config/prometheus.yml
ln -sfn /etc/prometheus/rules /prometheus/config/rules
exec /bin/prometheus "$@"
