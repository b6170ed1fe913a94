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
release=${PROMTOOL_VERSION#v0.}
release=3.$((10#${release%%.*} - 300)).${release#*.}
GOTOOLCHAIN=${GOTOOLCHAIN:-auto} exec "$(dirname "$0")/go-install.sh" promtool "$PROMTOOL_VERSION" \
  "Prometheus $release; the first time about 800 MB of modules, some shared with Kubernetes, and about 17 minutes of compiling on two busy cores" \
  "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" -tags remove_all_sd \
  -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release -X github.com/prometheus/common/version.Branch=HEAD"
