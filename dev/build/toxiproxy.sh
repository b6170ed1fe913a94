#!/usr/bin/env bash
# Builds Toxiproxy's server and CLI (the TCP fault proxy of the fault tests) from the Go module proxy
# into "$CSVKAFKA_CACHE/bin" as toxiproxy-server and toxiproxy-cli, once per version.
#
# v2.12 needs Go 1.23; its version string is set the way its Makefile sets it.
set -euo pipefail
TOXIPROXY_VERSION=${TOXIPROXY_VERSION:-v2.12.0}
CACHE=${CSVKAFKA_CACHE:-$HOME/.cache/csvkafka}
BIN=$CACHE/bin
STAMP=$BIN/.toxiproxy-$TOXIPROXY_VERSION
[ -f "$STAMP" ] && [ -x "$BIN/toxiproxy-server" ] && [ -x "$BIN/toxiproxy-cli" ] && exit 0
echo "building toxiproxy $TOXIPROXY_VERSION from source (under a minute the first time)" >&2

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod}
work=$CACHE/build/toxiproxy-$TOXIPROXY_VERSION
mkdir -p "$work" "$BIN"
# `go install` names its binaries after their package directories (server, cli): built aside, renamed.
GOBIN=$work go install -trimpath -ldflags "-s -w -X github.com/Shopify/toxiproxy/v2.Version=$TOXIPROXY_VERSION" \
  "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" "github.com/Shopify/toxiproxy/v2/cmd/cli@$TOXIPROXY_VERSION" \
  2>>"$work/go.log" || { cat "$work/go.log" >&2; exit 1; }
mv "$work/server" "$BIN/toxiproxy-server"
mv "$work/cli" "$BIN/toxiproxy-cli"
rm -f "$BIN"/.toxiproxy-*
touch "$STAMP"
