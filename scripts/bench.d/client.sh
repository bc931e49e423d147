#!/usr/bin/env bash
# One benchmark cell's client side, run by scripts/bench directly or inside
# `egressd run` (then everything here is in the sandbox and reaches the origin through
# egressd's transparent proxy).
#
# Usage: client.sh CTL_DIR OUT URL PROXY EXPECTED_BODY -- LOAD_CMD ARGS...
#   CTL_DIR        holds the fifos to_bench and to_client (the handshake with scripts/bench)
#   OUT            LOAD_CMD's stdout goes to OUT, its stderr to OUT.stderr
#   URL, PROXY     the preflight request ("-" for no explicit proxy)
#   EXPECTED_BODY  file the preflight response body must equal
#
# Handshake: "started" once the target answers correctly; wait for "go" (scripts/bench
# samples the proxy's CPU time in between, so the sample is not racing the load);
# run LOAD_CMD; "done RC"; wait for "release" (scripts/bench samples again while the
# proxy, for egressd, is still alive). A target that never answers correctly gets
# "failed REASON" instead, and nothing is measured.
# With BENCH_SELF_HANDSHAKE=1 the load command does the handshake itself (the idle
# connection client, which has to be sampled while it holds its connections).
# HTTPS preflight: BENCH_RESOLVE=HOST:PORT:ADDR (curl --resolve, for a name the machine
# cannot look up) and BENCH_CACERT=FILE, the CA the answer's certificate must chain to
# (so a passthrough that intercepts, or an interception that passes through, fails);
# BENCH_CACERT=@EGRESSD_CA_CERT takes the sandbox CA that `egressd run` exported.
set -uo pipefail
ctl=$1 out=$2 url=$3 proxy=$4 expected=$5
shift 5
[ "${1:-}" = "--" ] && shift

say() { echo "$*" >"$ctl/to_bench"; }
hear() { read -r _ <"$ctl/to_client"; }

# The target may still be starting: retry for up to 15 s, then give up with the last
# answer, so a proxy that denies (403) or mangles the body never gets measured as fast.
# (--noproxy '*' would also override --proxy: only without an explicit proxy.)
proxy_args=(--noproxy '*')
[ "$proxy" != "-" ] && proxy_args=(--proxy "$proxy")
[ -n "${BENCH_RESOLVE:-}" ] && proxy_args+=(--resolve "$BENCH_RESOLVE")
if [ -n "${BENCH_CACERT:-}" ]; then
  cacert=$BENCH_CACERT
  [ "$cacert" = @EGRESSD_CA_CERT ] && cacert=${EGRESSD_CA_CERT:-/nonexistent/EGRESSD_CA_CERT-unset}
  proxy_args+=(--cacert "$cacert")
fi
reason="no answer"
for _ in $(seq 75); do
  code=$(curl -sS "${proxy_args[@]}" --max-time 5 -o "$out.preflight-body" \
    -w '%{http_code}' "$url" 2>"$out.preflight-err")
  if [ "$code" = 200 ] && cmp -s "$out.preflight-body" "$expected"; then
    reason=""
    break
  fi
  if [ "$code" = 000 ]; then
    reason="no HTTP answer ($(tr -d '\n' <"$out.preflight-err" | cut -c1-120))"
  elif [ "$code" != 200 ]; then
    reason="HTTP $code"
  else
    reason="HTTP 200 with a different body ($(stat -c %s "$out.preflight-body") bytes)"
  fi
  sleep 0.2
done
if [ -n "$reason" ]; then
  say "failed preflight GET $url: $reason"
  exit 3
fi

if [ "${BENCH_SELF_HANDSHAKE:-0}" = 1 ]; then
  BENCH_CTL="$ctl" "$@" >"$out" 2>"$out.stderr"
  exit $?
fi

say started
hear
"$@" >"$out" 2>"$out.stderr"
rc=$?
say "done $rc"
hear
exit "$rc"
