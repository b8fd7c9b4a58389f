# Rendered by `flightdelay stack compose` (stack/dockerfiles.py): do not edit.
# nginx of the compose stack, as the image's `nginx` user (every port is above 1024;
# its pid file is in /tmp): openssl (nginx:alpine drops it) for the start-up script that
# writes the htpasswd (SHA-512 crypt, as natively) and a self-signed TLS certificate.
# The config and that script are rendered from the stack spec and mounted.
FROM nginx:1.27-alpine
RUN apk add --no-cache openssl && mkdir -p /etc/nginx/secrets && chown -R nginx:nginx /etc/nginx/secrets /var/cache/nginx /var/log/nginx
USER nginx
EXPOSE 8080 8443 5080 5050 9000 5432
