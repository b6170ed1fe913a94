#!/usr/bin/env bash
# Installs, from Debian, what the stack's nodes need when any of it is missing: containerd, runc and
# the CNI plugins; buildah, podman and mmdebstrap to build their images. No service may start at
# install: the stack runs containerds of its own.
set -euo pipefail
packages=(containerd runc containernetworking-plugins iptables buildah podman conmon uidmap mmdebstrap)
dpkg -s "${packages[@]}" >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "the stack's nodes need: apt-get install --no-install-recommends ${packages[*]} (run as root)" >&2
  exit 1
fi
echo "installing the nodes' container runtime and image tools from Debian (${packages[*]})" >&2
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
[ -n "$made_policy" ] && rm -f "$policy"
exit 0
