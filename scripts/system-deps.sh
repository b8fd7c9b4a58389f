#!/usr/bin/env bash
# Install the Debian packages the tests and the native stack use, only those missing.
# nginx: the stack's proxy; chromium: browser checks of the MLflow UI; docker-compose (no
# recommends: no engine) validates docker-compose.yaml offline; openssl: a test checks that the
# compose nginx's htpasswd hashes (openssl passwd -6) verify as the native ones; wrk: benchmarks;
# prometheus: the native stack's Prometheus (and promtool), its own system service kept from
# starting (policy-rc.d answers 101 during the install): the stack runs its own.
set -euo pipefail
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null || need+=(chromium)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v openssl >/dev/null || need+=(openssl)
command -v wrk >/dev/null || need+=(wrk)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)  # Spark (score.engine spark-*)
[ -f /usr/share/java/postgresql.jar ] || need+=(libpostgresql-jdbc-java)  # Spark over JDBC (score)
command -v prometheus >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod 755 "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
