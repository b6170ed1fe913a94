#!/usr/bin/env bash
# Builds the helm CLI from the Go module proxy into "$CSVKAFKA_CACHE/bin", once per version.
#
# v3.19 is the Helm line built against client-go v0.34, the minor of the stack's Kubernetes, and it
# needs only Go 1.24 (later lines need 1.25+). Helm's own version string is set the way its
# Makefile sets it, so `helm version` names the release rather than "v3.19+unreleased".
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v3.19.5}
CACHE=${CSVKAFKA_CACHE:-$HOME/.cache/csvkafka}
BIN=$CACHE/bin
STAMP=$BIN/.helm-$HELM_VERSION
[ -f "$STAMP" ] && [ -x "$BIN/helm" ] && exit 0
echo "building helm $HELM_VERSION from source (a minute or two the first time)" >&2

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN=$BIN
export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod}
mkdir -p "$BIN"
go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
rm -f "$BIN"/.helm-*
touch "$STAMP"
