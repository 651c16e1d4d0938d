#!/usr/bin/env bash
# Two hosts simulated on this machine: network namespaces alibi-h1 (10.77.0.1) and alibi-h2
# (10.77.0.2) joined by a veth pair; mpirun runs in alibi-h1 and starts the rank of alibi-h2
# through scripts/netns_rsh.sh (OpenMPI's rsh launcher, where ssh would go to another machine);
# the ranks talk TCP over the veth pair only. Needs root (ip netns).
#
#   bash scripts/two_hosts.sh up|down
#   bash scripts/two_hosts.sh run ALIBI_ARGS...    # mpirun -np 2 across the two "hosts"
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in
  up)
    ip netns list | grep -q '^alibi-h1' && exit 0
    ip netns add alibi-h1
    ip netns add alibi-h2
    ip link add veth-alibi1 type veth peer name veth-alibi2
    ip link set veth-alibi1 netns alibi-h1
    ip link set veth-alibi2 netns alibi-h2
    ip -n alibi-h1 addr add 10.77.0.1/24 dev veth-alibi1
    ip -n alibi-h2 addr add 10.77.0.2/24 dev veth-alibi2
    for n in 1 2; do
      ip -n alibi-h$n link set lo up
      ip -n alibi-h$n link set veth-alibi$n up
    done ;;
  down)
    ip netns del alibi-h1 2>/dev/null || true
    ip netns del alibi-h2 2>/dev/null || true ;;
  run)
    shift
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    exec ip netns exec alibi-h1 mpirun --host 10.77.0.1,10.77.0.2 -np 2 --bind-to none \
      --mca plm_rsh_agent "$HERE/netns_rsh.sh" --mca btl tcp,self \
      --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 "$@" ;;
  *) echo "usage: two_hosts.sh up|down|run ALIBI_ARGS..." >&2; exit 2 ;;
esac
