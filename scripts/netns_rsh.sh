#!/bin/sh
# OpenMPI's rsh launcher agent for scripts/two_hosts.sh: "HOST [options] COMMAND..." runs COMMAND
# in the network namespace that owns HOST's address (alibi-h1: 10.77.0.1, alibi-h2: 10.77.0.2),
# where ssh would run it on another machine.
host=$1; shift
while [ "${1#-}" != "$1" ]; do shift; done  # ssh options OpenMPI may pass (-x)
case "$host" in
  10.77.0.1) ns=alibi-h1 ;;
  10.77.0.2) ns=alibi-h2 ;;
  *) echo "netns_rsh: unknown host '$host'; expected 10.77.0.1 or 10.77.0.2" >&2; exit 2 ;;
esac
exec ip netns exec "$ns" sh -c "$*"
