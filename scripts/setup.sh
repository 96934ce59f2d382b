#!/usr/bin/env bash
# Install everything netns_kit needs on a fresh Debian/Ubuntu machine (run as root):
# system packages, a virtual environment in .venv, and the package itself (editable, with dev tools).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (netns_kit manages network namespaces)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
PKGS="git iproute2 nftables libnftables1 python3 python3-venv python3-pip util-linux procps iputils-ping
      podman runc busybox-static uidmap mininet bridge-utils graphviz netavark containernetworking-plugins iptables
      docker.io containerd aardvark-dns"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup.sh: installing Debian packages:$missing"
  apt-get update -qq
  # docker.io's and containerd's install scripts would start their daemons on the machine itself (dockerd
  # makes docker0 and firewall rules): the tests start their own dockerd inside the sandbox instead, so
  # service starts are refused while installing, and the units are not enabled at boot.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  if [ -n "$policy" ]; then rm -f "$policy"; trap - EXIT; fi
  case " $missing " in *" docker.io "*|*" containerd "*)
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      systemctl disable -q docker.service docker.socket containerd.service 2>/dev/null || true
    fi;;
  esac
fi
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,bench,capture,progress]'
echo "setup.sh: ready (.venv, $(.venv/bin/python --version))"
