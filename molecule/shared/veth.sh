#!/bin/sh
# A veth pair for traffic the scenarios and demos control: NAME0 (ADDRESS.1/24) in this network
# namespace and its peer NAME1 (ADDRESS.2/24) in the network namespace NETNS.
#   veth.sh [NAME NETNS ADDRESS]     create it (default: lab0 / lab1 in labpeer, 198.51.100)
#   veth.sh --delete NAME NETNS      delete the pair and the namespace
# Leaves an existing pair alone; prints "created" or "deleted" when it changed something.
set -eu
if [ "${1:-}" = "--delete" ]; then
    name=$2 netns=$3
    changed=
    if ip link show dev "${name}0" >/dev/null 2>&1; then
        ip link del "${name}0"
        changed=1
    fi
    if [ -e "/run/netns/$netns" ]; then
        ip netns del "$netns"
        changed=1
    fi
    if [ -n "$changed" ]; then
        echo deleted
    fi
    exit 0
fi
name=${1:-lab} netns=${2:-labpeer} address=${3:-198.51.100}
if ip link show dev "${name}0" >/dev/null 2>&1; then
    exit 0
fi
[ -e "/run/netns/$netns" ] || ip netns add "$netns"
ip link add "${name}0" type veth peer name "${name}1" netns "$netns"
ip address add "$address.1/24" dev "${name}0"
ip link set "${name}0" up
ip -n "$netns" address add "$address.2/24" dev "${name}1"
ip -n "$netns" link set "${name}1" up
ip -n "$netns" link set lo up
echo created
