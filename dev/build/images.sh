#!/usr/bin/env bash
# Builds the images the stack's nodes run, with no Docker daemon and no registry, into
# "$CSVKAFKA_CACHE/images" as docker archives that containerd imports:
#   pause.tar     the pod sandbox (dev/build/pause, a static Go program)
#   csvkafka.tar  the repository's Dockerfile, built with buildah on a Debian bookworm base made by
#                 mmdebstrap from the mirror apt uses (python3 from Debian stands in for python:3.11-slim)
# Each is rebuilt only when its inputs change.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${CSVKAFKA_CACHE:-$HOME/.cache/csvkafka}
OUT=$CACHE/images
BASE=localhost/csvkafka-base:python3.11-bookworm
# The tags pods run (dev/devstack/images.py names the same two).
IMAGE=localhost/csvkafka:dev
PAUSE=localhost/pause:csvkafka
mkdir -p "$OUT" "$CACHE/containers"

# podman and buildah keep their storage in the cache, with the settings this kind of host needs:
# runc (crun refuses the mixed cgroup v1/v2 hierarchy), ulimits root may set, host networking.
export CONTAINERS_STORAGE_CONF=$CACHE/containers/storage.conf CONTAINERS_CONF=$CACHE/containers/containers.conf
cat > "$CONTAINERS_STORAGE_CONF" <<CONF
[storage]
driver = "overlay"
graphroot = "$CACHE/containers/storage"
runroot = "/run/csvkafka-containers"
CONF
cat > "$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF

digest() { sha256sum | cut -c1-16; }

pause_key=$(cat "$REPO/dev/build/pause/main.go" | digest)
if [ "$(cat "$OUT/pause.key" 2>/dev/null)" != "$pause_key" ]; then
  echo "images: building the pod sandbox (pause)" >&2
  (cd "$REPO/dev/build/pause" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags "-s -w" -o "$OUT/pause" main.go)
  c=$(buildah from scratch)
  buildah copy "$c" "$OUT/pause" /pause >/dev/null
  buildah config --entrypoint '["/pause"]' --user 65535:65535 "$c"
  buildah commit --quiet "$c" "$PAUSE" >/dev/null
  buildah rm "$c" >/dev/null
  rm -f "$OUT/pause.tar"
  podman save --quiet --format docker-archive -o "$OUT/pause.tar" "$PAUSE"
  echo "$pause_key" > "$OUT/pause.key"
fi

# The base: Debian bookworm from the same mirror (and snapshot settings) as the host's apt.
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
base_key=$(cat "$sources" | digest)
if [ "$(cat "$OUT/base.key" 2>/dev/null)" != "$base_key" ] || ! podman image exists "$BASE"; then
  echo "images: making a Debian bookworm base with python3 (mmdebstrap, about a minute)" >&2
  mmdebstrap --quiet --mode=root --variant=minbase --format=tar \
    --include=ca-certificates,passwd,python3,python3-venv,python3-pip \
    --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Check-Date "false"' \
    bookworm "$OUT/base.tar" "$sources"
  podman import --quiet --change 'CMD ["python3"]' "$OUT/base.tar" "$BASE" >/dev/null
  rm -f "$OUT/base.tar"
  echo "$base_key" > "$OUT/base.key"
fi

# The project's image: rebuilt when the build context (what .dockerignore lets in) changes.
image_key=$(cd "$REPO" && {
  find Dockerfile .dockerignore pyproject.toml README.md requirements.lock worker operator -type f \
    ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' ! -name '*.so' ! -path 'worker/native/target/*' \
    -print0 | sort -z | xargs -0 sha256sum; echo "$base_key"; } | digest)
if [ "$(cat "$OUT/csvkafka.key" 2>/dev/null)" != "$image_key" ]; then
  echo "images: building $IMAGE from the Dockerfile with buildah (a few minutes the first time)" >&2
  # The build reaches the package indexes through the host's trust store (it may hold a proxy's CA).
  buildah build --quiet --isolation chroot --pull=never --layers \
    --build-arg "PYTHON_IMAGE=$BASE" --build-arg "REVISION=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)" \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    -t "$IMAGE" -f "$REPO/Dockerfile" "$REPO" >/dev/null
  rm -f "$OUT/csvkafka.tar"
  podman save --quiet --format docker-archive -o "$OUT/csvkafka.tar" "$IMAGE"
  # Old builds go after a day; younger layers are the next build's cache.
  podman image prune --force --filter until=24h >/dev/null
  echo "$image_key" > "$OUT/csvkafka.key"
fi
