#!/usr/bin/env bash
# Install the Debian packages the tests and the native stack use, only those missing.
# nginx: the stack's proxy; chromium: browser checks of the MLflow UI; docker-compose (no
# recommends: no engine) validates docker-compose.yaml offline; openssl: a test checks that the
# compose nginx's htpasswd hashes (openssl passwd -6) verify as the native ones; wrk: benchmarks.
set -euo pipefail
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null || need+=(chromium)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v openssl >/dev/null || need+=(openssl)
command -v wrk >/dev/null || need+=(wrk)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)  # Spark (score.engine spark-*)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
