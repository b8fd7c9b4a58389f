#!/usr/bin/env bash
# Static checks of deploy/prometheus with promtool: both configs (native, compose) with the rule
# files they load, the rules, and the rules' unit tests (every alert firing and quiet).
# Installs Debian's `prometheus` package (promtool) when promtool is missing, and leaves no
# Prometheus service running: the package's own service is kept from starting during the install,
# stopped if it started anyway, and disabled. PROMTOOL=/path/to/promtool skips the install.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=deploy/prometheus

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

stop_debian_service() {
  # the package enables prometheus.service / the init script; the stack runs its own Prometheus
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  else
    if [ -x /etc/init.d/prometheus ]; then
      $SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null; then
      $SUDO update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
  fi
}

install_promtool() {
  echo "promtool missing: installing Debian's prometheus package (no service kept running)"
  local policy=/usr/sbin/policy-rc.d added=""
  if [ ! -e "$policy" ]; then
    # invoke-rc.d and deb-systemd-invoke ask this; 101 = do not start services
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    added=1
  fi
  local rc=0
  {
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends prometheus)
    $SUDO "${apt[@]}" >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO "${apt[@]}" >/dev/null; }
  } || rc=$?
  if [ -n "$added" ]; then $SUDO rm -f "$policy"; fi
  stop_debian_service
  return "$rc"
}

PROMTOOL=${PROMTOOL:-$(command -v promtool || true)}
if [ -z "$PROMTOOL" ]; then
  install_promtool
  PROMTOOL=$(command -v promtool)
fi

"$PROMTOOL" --version 2>&1 | head -n 1
for config in "$DIR"/prometheus.yml "$DIR"/prometheus.compose.yml; do
  "$PROMTOOL" check config "$config"  # also checks every rule file it loads
done
"$PROMTOOL" check rules "$DIR"/rules/*.yml
"$PROMTOOL" test rules "$DIR"/tests/*.yml
echo "prometheus-check: OK"
