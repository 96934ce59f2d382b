#!/usr/bin/env bash
# Print the state of the machine's own network namespace (and the files next to it) that the tests
# must never change.
set -u
echo "== links";    ip -o link show | sed -E 's/^[0-9]+: //; s/ qlen [0-9]+//' | sort
echo "== addresses"; ip -o addr show | sed -E 's/^[0-9]+: //; s/valid_lft.*//' | sort
echo "== routes";    ip route show table all | sort
echo "== nft";       nft list ruleset 2>&1
echo "== /run/netns"; ls -A /run/netns 2>&1
echo "== sysctls"
for k in net.ipv4.ip_forward net.ipv6.conf.all.forwarding net.ipv4.conf.all.forwarding \
         net.ipv4.conf.all.route_localnet; do
  echo "$k=$(sysctl -n "$k" 2>&1)"
done
# files the suite could leave on the disk: /etc/netns entries, a container engine's storage
echo "== /etc/netns"; ls -A /etc/netns 2>&1 || true
echo "== container storage"; ls -d /var/lib/containers /run/containers /run/libpod 2>&1 || true
