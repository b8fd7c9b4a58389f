# nginx of the compose stack: the official image plus openssl (its alpine variant removes it after
# the build), the proxy templates, a TCP proxy for PostgreSQL (so nginx is the only service that
# publishes ports) and the start-up script that renders MLflow's htpasswd and a TLS certificate.
FROM nginx:1.27-alpine
RUN apk add --no-cache openssl \
 && mkdir -p /etc/nginx/stream.d /etc/nginx/secrets \
 && printf '\nstream {\n    include /etc/nginx/stream.d/*.conf;\n}\n' >> /etc/nginx/nginx.conf
COPY Docker/nginx/templates/ /etc/nginx/templates/
COPY Docker/nginx/postgres.stream.conf /etc/nginx/stream.d/postgres.conf
COPY Docker/nginx/40-secrets.sh /docker-entrypoint.d/40-secrets.sh
RUN chmod 755 /docker-entrypoint.d/40-secrets.sh
EXPOSE 8080 8443 5080 5050 9000 5432
