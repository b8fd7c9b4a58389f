# nginx of the compose stack: the official image plus openssl (its alpine variant removes it after
# the build) for the start-up script that writes MLflow's htpasswd (SHA-512 crypt, as natively) and
# a self-signed TLS certificate. The config (Docker/nginx/nginx.conf, with the TCP proxy for
# PostgreSQL) and that script (Docker/nginx/40-secrets.sh) are rendered from the stack spec by
# `flightdelay stack compose` and mounted by docker-compose.yaml.
FROM nginx:1.27-alpine
RUN apk add --no-cache openssl && mkdir -p /etc/nginx/secrets
EXPOSE 8080 8443 5080 5050 9000 5432
