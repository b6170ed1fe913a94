#!/usr/bin/env bash
# Builds Prometheus's promtool from the Go module proxy into "$CSVKAFKA_CACHE/bin", once per version.
# The chart's alerting rules are checked and unit-tested with it (tests/unit/test_chart_alerts.py).
#
# Prometheus 3.x is published to the proxy as github.com/prometheus/prometheus v0.3MM.P (3.MM.P).
# `go install pkg@version` refuses a go.mod with replace or exclude directives; every release before
# v0.316.0 (3.16.0) has some. Its go.mod asks for Go 1.26.7: an older local Go fetches that
# toolchain from the module proxy (GOTOOLCHAIN=auto), a newer one builds it as it is.
# remove_all_sd leaves out the cloud service-discovery plugins (AWS, Azure, GCE, …), the bulk of a
# cold build; `promtool check rules` and `promtool test rules` do not use them.
set -euo pipefail
PROMTOOL_VERSION=${PROMTOOL_VERSION:-v0.316.0}
CACHE=${CSVKAFKA_CACHE:-$HOME/.cache/csvkafka}
BIN=$CACHE/bin
STAMP=$BIN/.promtool-$PROMTOOL_VERSION
[ -f "$STAMP" ] && [ -x "$BIN/promtool" ] && exit 0
release=${PROMTOOL_VERSION#v0.}
release=3.$((10#${release%%.*} - 300)).${release#*.}
echo "building promtool $release ($PROMTOOL_VERSION) from source (about five minutes and 600 MB of modules the first time)" >&2

export GOTOOLCHAIN=auto CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN=$BIN
export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod}
mkdir -p "$BIN"
started=$(date +%s)
go install -trimpath -tags remove_all_sd \
  -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release -X github.com/prometheus/common/version.Branch=HEAD" \
  "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
rm -f "$BIN"/.promtool-*
touch "$STAMP"
echo "built promtool $release in $(( $(date +%s) - started ))s" >&2
