#!/usr/bin/env bash
# Starts three private redis-servers on free loopback ports, runs every
# workload of shared/bench/WORKLOADS.md against them (flushing between runs,
# as the driver does), prints one JSON line per workload, stops the servers.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bench workloads 2>/dev/null || cargo bench --no-run --bench workloads
BIN=$(ls -t target/release/deps/workloads-* | grep -v '\.d$' | head -1)
dir=$(mktemp -d)
ports=()
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
for i in 1 2 3; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --daemonize no >/dev/null &
  pids+=($!)
  ports+=("$port")
done
for port in "${ports[@]}"; do
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
done
PORTS=$(IFS=,; echo "${ports[*]}")
for w in ${WORKLOADS:-mutex-solo mutex-contended semaphore-contended multisemaphore-contended many-keys redlock-mutex-solo redlock-mutex-contended mutex-handoff idle-waiters}; do
  for port in "${ports[@]}"; do
    redis-cli -p "$port" FLUSHALL >/dev/null; redis-cli -p "$port" SCRIPT FLUSH >/dev/null; redis-cli -p "$port" CONFIG RESETSTAT >/dev/null
  done
  PORTS=$PORTS "$BIN" "$w"
done
