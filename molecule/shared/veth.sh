#!/bin/sh
# Runs inside a lab guest: a veth pair for traffic the scenarios control, lab0 (198.51.100.1/24)
# in the host's network namespace and its peer lab1 (198.51.100.2/24) in the namespace labpeer.
# Leaves an existing pair alone; prints "created" when it made one.
set -eu
if ip link show dev lab0 >/dev/null 2>&1; then
    exit 0
fi
ip netns add labpeer
ip link add lab0 type veth peer name lab1 netns labpeer
ip address add 198.51.100.1/24 dev lab0
ip link set lab0 up
ip -n labpeer address add 198.51.100.2/24 dev lab1
ip -n labpeer link set lab1 up
ip -n labpeer link set lo up
echo created
