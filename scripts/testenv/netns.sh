# Shell helpers for a throwaway "internet": one network namespace joined to the host by a
# veth pair, with addresses from 198.18.0.0/15 (RFC 2544 benchmarking range) only.
# Source this file; every function that creates something has an undo in testenv_down.

# testenv_up NAME SUBNET_OCTET  -> netns NAME, host 198.18.<o>.1/24, netns .2 .3 .4
testenv_up() {
  local name=$1 octet=$2
  TESTENV_NS=$name
  TESTENV_VETH_HOST="${name:0:11}h"
  TESTENV_VETH_NS="${name:0:11}n"
  TESTENV_NET="198.18.$octet"
  ip netns add "$TESTENV_NS"
  ip link add "$TESTENV_VETH_HOST" type veth peer name "$TESTENV_VETH_NS"
  ip link set "$TESTENV_VETH_NS" netns "$TESTENV_NS"
  ip addr add "$TESTENV_NET.1/24" dev "$TESTENV_VETH_HOST"
  ip link set "$TESTENV_VETH_HOST" up
  ip -n "$TESTENV_NS" link set lo up
  for host in 2 3 4; do
    ip -n "$TESTENV_NS" addr add "$TESTENV_NET.$host/24" dev "$TESTENV_VETH_NS"
  done
  ip -n "$TESTENV_NS" link set "$TESTENV_VETH_NS" up
}

# Runs a command inside the test namespace, refusing if it does not exist.
testenv_exec() {
  ip netns list | grep -qw "$TESTENV_NS" || { echo "testenv: netns $TESTENV_NS missing" >&2; return 1; }
  ip netns exec "$TESTENV_NS" "$@"
}

testenv_down() {
  [ -n "${TESTENV_NS:-}" ] || return 0
  # `ip netns exec` forks, so the pids a caller saw are not its servers': stop every
  # process living in the namespace, by pid.
  if ip netns list | grep -qw "$TESTENV_NS"; then
    local pids
    pids=$(ip netns pids "$TESTENV_NS" 2>/dev/null || true)
    [ -n "$pids" ] && kill $pids 2>/dev/null || true
    sleep 0.2
    pids=$(ip netns pids "$TESTENV_NS" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
  fi
  ip link del "$TESTENV_VETH_HOST" 2>/dev/null || true
  ip netns del "$TESTENV_NS" 2>/dev/null || true
}
