#!/usr/bin/env bash
# The classic recipe (pipework, tutorials): one `ip` or `nft` process per step.
# Usage: shell_recipe.sh prepare|setup|teardown|cleanup N PREFIX   (see benchmarks/approach_shell.py)
set -euo pipefail
phase=$1; n=$2; p=$3
addr() { echo "10.77.$(($1 / 250)).$(($1 % 250 + 2))"; }
case $phase in
prepare)
  ip link add br0 type bridge
  ip addr add 10.77.0.1/16 dev br0
  ip link set br0 up
  nft add table ip bench_nat
  nft add chain ip bench_nat prerouting '{ type nat hook prerouting priority -100; }'
  nft add chain ip bench_nat postrouting '{ type nat hook postrouting priority 100; }'
  nft add rule ip bench_nat postrouting ip saddr 10.77.0.0/16 oifname != br0 masquerade
  ;;
setup)
  for ((i = 1; i <= n; i++)); do
    ns=$p$i
    ip netns add "$ns"
    ip link add "h$p$i" type veth peer name "c$p$i"
    ip link set "h$p$i" master br0
    ip link set "h$p$i" up
    ip link set "c$p$i" netns "$ns"
    ip -n "$ns" link set "c$p$i" name eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$(addr "$i")/16" dev eth0
    ip -n "$ns" route add default via 10.77.0.1
    nft add rule ip bench_nat prerouting tcp dport $((20000 + i)) dnat to "$(addr "$i"):80"
  done
  ;;
teardown)
  for ((i = 1; i <= n; i++)); do
    ip netns del "$p$i"
  done
  nft flush chain ip bench_nat prerouting
  ;;
cleanup)
  ip link del br0
  nft delete table ip bench_nat
  ;;
esac
