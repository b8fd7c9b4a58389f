#!/bin/sh
# nginx container start: basic-auth file for MLflow and a self-signed TLS certificate.
set -eu
mkdir -p /etc/nginx/secrets
printf '%s:%s\n' "$MLFLOW_TRACKING_USERNAME" "$(openssl passwd -apr1 "$MLFLOW_TRACKING_PASSWORD")" > /etc/nginx/secrets/htpasswd
if [ ! -f /etc/nginx/secrets/tls.crt ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj /CN=localhost \
    -keyout /etc/nginx/secrets/tls.key -out /etc/nginx/secrets/tls.crt 2>/dev/null
fi
