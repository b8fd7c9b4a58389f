#!/bin/sh
# Rendered by `flightdelay stack compose` from flightdelay.stack: do not edit.
set -eu
mkdir -p /etc/nginx/secrets
hash="$(printf '%s' "${MLFLOW_TRACKING_PASSWORD}" | openssl passwd -6 -stdin)"
printf '%s:%s\n' "${MLFLOW_TRACKING_USERNAME}" "$hash" > /etc/nginx/secrets/htpasswd.tmp
chmod 600 /etc/nginx/secrets/htpasswd.tmp
mv /etc/nginx/secrets/htpasswd.tmp /etc/nginx/secrets/htpasswd
if [ ! -f /etc/nginx/secrets/tls.crt ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout /etc/nginx/secrets/tls.key -out /etc/nginx/secrets/tls.crt 2>/dev/null
  chmod 600 /etc/nginx/secrets/tls.key
fi
