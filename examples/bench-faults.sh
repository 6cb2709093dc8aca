#!/bin/sh
# The faults table of BENCHMARKS.md: p50/p99 of search, ResolveSenders (batches of 100), Get and
# Authenticate with a healthy PostgreSQL source plus a second source behind examples/faultproxy
# in each mode, beside all-healthy. 10,000 seeded users; 10 s per operation (half Clientele, half
# its floor, see loadgen). Needs a release build:
#   cargo build --release --bin clientele --example loadgen --example faultproxy
set -eu
T=${T:-target/release}
CFG=examples/bench-faults.toml
MODE=/tmp/clientele-faults-mode
PSQL="psql -q -h 127.0.0.1 -U postgres"
$PSQL -c 'DROP DATABASE IF EXISTS bench_faults' -c 'CREATE DATABASE bench_faults' \
      -c 'DROP DATABASE IF EXISTS bench_faults_far' -c 'CREATE DATABASE bench_faults_far'
echo pass > $MODE
$T/examples/faultproxy --listen 127.0.0.1:15433 --target 127.0.0.1:5432 --mode-file $MODE &
PROXY=$!
trap 'kill $PROXY $SERVER 2>/dev/null || true' EXIT
SERVER=
$T/clientele --config $CFG seed --users 10000 --customers 1000 --source main
CLIENTELE_LOG=warn,clientele::source::breaker=info $T/clientele --config $CFG serve 2>/tmp/clientele-faults-server.log &
SERVER=$!
sleep 3   # first contact: "far" is migrated while the proxy passes
# MODES="pass refuse" runs only those (modes are words; slow takes "slow:50ms").
for mode in ${MODES:-pass refuse blackhole slow:50ms reset}; do
  mode=$(echo "$mode" | tr : " ")
  echo "$mode" > $MODE
  sleep 3   # the mode reaches the proxy (100 ms) and, for faults, the breaker opens
  echo "=== far: $mode (from $(date -u +%T.%N | cut -c1-12))"
  $T/examples/loadgen --server http://127.0.0.1:50063 --db-url postgres://postgres@127.0.0.1:5432/bench_faults \
    --users 10000 --customers 1000 --duration 10s --concurrency 4 --ops search,resolve100,get,auth
  echo "healed at $(date -u +%T.%N | cut -c1-12)"
  echo pass > $MODE
  sleep 3   # healed: the probe (1 s) closes the breaker before the next mode
done
