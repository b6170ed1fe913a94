#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kubectl of one
# Kubernetes release, and crictl (the stack's nodes are torn down through CRI), from the Go module
# proxy into "$CSVKAFKA_CACHE/bin".
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every staging module with a
# local path. A wrapper module requires it and replaces each staging module with its published
# v0.x twin; the replace list is read from the release's own go.mod so it never drifts.
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-v1.34.4}
CRI_TOOLS_VERSION=${CRI_TOOLS_VERSION:-v1.34.0}
CACHE=${CSVKAFKA_CACHE:-$HOME/.cache/csvkafka}
BIN=$CACHE/bin
STAMP=$BIN/.kubernetes-$K8S_VERSION-kubelet-crictl-$CRI_TOOLS_VERSION
[ -f "$STAMP" ] && exit 0
echo "building Kubernetes $K8S_VERSION from source (a few minutes the first time, cached after)" >&2

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
export GOMODCACHE=${GOMODCACHE:-$CACHE/gomod}
work=$CACHE/build/k8s-$K8S_VERSION
mkdir -p "$work" "$BIN"
cd "$work"

staging_version="v0.${K8S_VERSION#v1.}"
upstream_mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
go_line=$(grep -m1 '^go ' "$upstream_mod")
{
  echo "module local/k8sbins"
  echo "$go_line"
  grep -m1 '^godebug ' "$upstream_mod" || true
  echo "replace ("
  grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$upstream_mod" | awk '{print $1}' | sort -u |
    while read -r m; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
  echo ")"
} > go.mod

cmd=k8s.io/kubernetes/cmd
# `go get` names every module it adds: kept in a log, shown only if it fails.
quiet() { "$@" 2>>"$work/go-get.log" || { cat "$work/go-get.log" >&2; exit 1; }; }
quiet go get -tool "$cmd/kube-apiserver@$K8S_VERSION" "$cmd/kube-controller-manager@$K8S_VERSION" \
  "$cmd/kube-scheduler@$K8S_VERSION" "$cmd/kubelet@$K8S_VERSION" "$cmd/kubectl@$K8S_VERSION"
etcd_version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
quiet go get -tool "go.etcd.io/etcd/server/v3@$etcd_version"

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
go build -trimpath -ldflags "$ldflags" -o "$BIN/" "$cmd/kube-apiserver" "$cmd/kube-controller-manager" \
  "$cmd/kube-scheduler" "$cmd/kubelet" "$cmd/kubectl"
go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
quiet env GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
touch "$STAMP"
