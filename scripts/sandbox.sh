#!/usr/bin/env bash
# Run a command inside a throwaway network + mount namespace that plays "the host".
# /run is a fresh tmpfs (so /run/netns lives in memory) and /etc and /var/lib are overlaid
# by tmpfs layers (so /etc/netns/NAME files, and the storage a container engine creates when
# netns_kit asks it about a container, never reach the disk). Nothing here touches the
# machine's own interfaces, routes, nft ruleset, sysctls or /run/netns.
# Without root it runs rootless: a user namespace too (the caller is root inside it, nowhere else),
# /run a tmpfs, an empty /etc/netns in memory (a tmpfs over /etc that binds its entries back, where
# /etc/netns does not exist: an overlay cannot lie over the locked mounts a container has in /etc),
# /var/lib as it is.
set -euo pipefail
if [ "${NETNS_KIT_SANDBOXED:-}" = 1 ]; then exec "$@"; fi
if [ "$(id -u)" != 0 ]; then
  exec unshare --user --map-root-user --net --mount --propagation private -- bash -c '
    set -euo pipefail
    mount -t tmpfs -o mode=0755 netns-kit-run /run
    mkdir -p /run/netns /run/lock /run/.nk-etc
    if [ -d /etc/netns ]; then
      mount -t tmpfs -o mode=0755 netns-kit-etc /etc/netns
    else
      mount --rbind /etc /run/.nk-etc
      mount -t tmpfs -o mode=0755 netns-kit-etc /etc
      for e in /run/.nk-etc/* /run/.nk-etc/.[!.]*; do
        [ -e "$e" ] || [ -L "$e" ] || continue
        name=${e##*/}
        if [ -L "$e" ]; then ln -s "$(readlink "$e")" "/etc/$name"; continue; fi
        if [ -d "$e" ]; then mkdir "/etc/$name"; else : >"/etc/$name"; fi
        mount --rbind "$e" "/etc/$name"
      done
      mkdir /etc/netns
    fi
    PATH=$PATH:/usr/sbin:/sbin ip link set lo up
    export NETNS_KIT_SANDBOXED=1
    exec "$@"' netns-kit-sandbox "$@"
fi
exec unshare --net --mount --propagation private -- bash -c '
  set -euo pipefail
  mount -t tmpfs -o mode=0755 netns-kit-run /run
  mkdir -p /run/netns /run/.nk-etc/upper /run/.nk-etc/work /run/.nk-varlib/upper /run/.nk-varlib/work /run/lock
  mount -t overlay netns-kit-etc -o lowerdir=/etc,upperdir=/run/.nk-etc/upper,workdir=/run/.nk-etc/work /etc
  mount -t overlay netns-kit-varlib     -o lowerdir=/var/lib,upperdir=/run/.nk-varlib/upper,workdir=/run/.nk-varlib/work /var/lib
  ip link set lo up
  export NETNS_KIT_SANDBOXED=1
  exec "$@"' netns-kit-sandbox "$@"
