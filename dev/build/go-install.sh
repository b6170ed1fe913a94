#!/usr/bin/env bash
# Installs one Go command from the Go module proxy into "$CSVKAFKA_CACHE/bin", once per version:
#   go-install.sh NAME VERSION WHAT-IT-COSTS PACKAGE@VERSION [go install flags…]
# A stamp per version makes later calls a no-op; the first says what it builds, what that costs, and
# how long it took. GOTOOLCHAIN defaults to the local Go.
set -euo pipefail
name=$1 version=$2 cost=$3 package=$4
shift 4
CACHE=${CSVKAFKA_CACHE:-$HOME/.cache/csvkafka}
BIN=$CACHE/bin
STAMP=$BIN/.$name-$version
[ -f "$STAMP" ] && [ -x "$BIN/$name" ] && exit 0
echo "building $name $version from source ($cost)" >&2

export GOTOOLCHAIN=${GOTOOLCHAIN:-local} CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN=$BIN
export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod}
mkdir -p "$BIN"
started=$(date +%s)
go install -trimpath "$@" "$package"
rm -f "$BIN/.$name"-*
touch "$STAMP"
echo "built $name $version in $(( $(date +%s) - started ))s" >&2
