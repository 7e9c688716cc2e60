#!/usr/bin/env bash
# Brings up the single-node Kubernetes v1.20 cluster of ../shared/k8s-cluster for the real-cluster
# suites: builds its binaries once (cached in /var/cache/l02-k8s: about 8 minutes cold, seconds after),
# stops a cluster an earlier run left, starts it (about 20 s), applies config/kubernetes/ (namespaces,
# service account, RBAC), and makes sure the agent image is on the engine the kubelet uses.
#
#   .ci/setup-k8s.sh            then: L02_TEST_KUBECONFIG=$L02_K8S_CLUSTER_DIR/l02-runtime.kubeconfig
#   .ci/setup-k8s.sh --down     stops it and removes what it made
#
# Needs the Docker engine of .ci/setup-docker.sh (cgroupfs driver) and root. The scripts are required:
# a missing ../shared/k8s-cluster fails, it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
SCRIPTS="${L02_K8S_SCRIPTS:-$(cd .. && pwd)/shared/k8s-cluster}"
BIN="${L02_K8S_BIN:-/var/cache/l02-k8s/bin}"
DIR="${L02_K8S_CLUSTER_DIR:-/tmp/l02-k8s-cluster}"
[ -f "$SCRIPTS/up.sh" ] || { echo "the Kubernetes cluster scripts are required and missing: $SCRIPTS/up.sh" >&2; exit 1; }

if [ "${1:-}" = "--down" ]; then
  bash "$SCRIPTS/down.sh" "$DIR"
  exit 0
fi

bash "$SCRIPTS/build.sh" "$BIN"
[ -d "$DIR" ] && { bash "$SCRIPTS/down.sh" "$DIR" >/dev/null 2>&1 || true; }
bash "$SCRIPTS/up.sh" "$BIN" "$DIR"
if ! docker image inspect l02-agent:latest >/dev/null 2>&1; then
  node_modules/.bin/node src/backends/docker/buildAgentImageMain.ts
fi
bash "$SCRIPTS/apply-manifests.sh" "$BIN" "$DIR" .
echo "kubernetes cluster ready: $DIR/l02-runtime.kubeconfig (the runtime's identity), $DIR/admin.kubeconfig"
