#!/usr/bin/env bash
# Builds the helm CLI from the Go module proxy into "$CSVKAFKA_CACHE/bin", once per version.
#
# v3.19 is the Helm line built against client-go v0.34, the minor of the stack's Kubernetes, and it
# needs only Go 1.24 (later lines need 1.25+). Helm's own version string is set the way its
# Makefile sets it, so `helm version` names the release rather than "v3.19+unreleased".
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v3.19.5}
exec "$(dirname "$0")/go-install.sh" helm "$HELM_VERSION" "a minute or two the first time" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
