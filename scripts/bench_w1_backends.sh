#!/usr/bin/env bash
# W1 (client credentials + DPoP, shared/specs/performance.md) with the software key backend and
# with the PKCS#11 backend on a throwaway SoftHSM2 token, in the same run, alternating, so the
# two are measured on the same machine under the same load. One line per run.
#
#   scripts/bench_w1_backends.sh [duration] [runs] [workers]
#
# Needs `apt install softhsm2` and python-pkcs11 (the `hsm` or `test` extra). SQLite, a fresh
# server and database per backend, in a temporary directory (SOFTHSM2_CONF points there).
set -uo pipefail
duration=${1:-20}; runs=${2:-3}; workers=${3:-1}
port=${TESSERA_BENCH_PORT:-8000}
module=${TESSERA_BENCH_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill $server 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
[ -r "$module" ] || { echo "no PKCS#11 module at $module (apt install softhsm2)"; exit 2; }
mkdir tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$work" > softhsm2.conf
export SOFTHSM2_CONF="$work/softhsm2.conf"
softhsm2-util --init-token --free --label tessera-bench --pin 1234 --so-pin 5678 >/dev/null
printf '1234' > pin

cat > line.py <<'PY'
import json, sys
r = json.load(sys.stdin)
lat = r["latency_ms"]
print(f"W1 {sys.argv[1]:8} run {sys.argv[2]}: {r['throughput_per_s']:.0f}/s p50 "
      f"{lat['p50']:.1f} ms p99 {lat['p99']:.1f} ms errors {r['errors_total']}")
PY

start() {  # backend: a fresh database, a server, the bench client (its secret in $secret)
  local kind=$1
  rm -rf "$work/$kind"; mkdir "$work/$kind"
  export TESSERA_DATABASE_URL="sqlite+aiosqlite:///$work/$kind/tessera.db"
  export TESSERA_BASE_URL="http://127.0.0.1:$port" TESSERA_KEY_BACKEND=$kind
  unset TESSERA_PKCS11_MODULE TESSERA_PKCS11_TOKEN_LABEL TESSERA_PKCS11_PIN_FILE
  if [ "$kind" = pkcs11 ]; then  # else the software run would open the token too
    export TESSERA_PKCS11_MODULE=$module TESSERA_PKCS11_TOKEN_LABEL=tessera-bench
    export TESSERA_PKCS11_PIN_FILE="$work/pin"
  fi
  tessera serve --port "$port" --workers "$workers" > "$work/$kind/server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 150); do curl -fs "$TESSERA_BASE_URL/healthz" >/dev/null && break; sleep 0.2; done
  tessera client create --tenant demo --name bench --client-id bench --dpop-required \
      --audience "$TESSERA_BASE_URL/t/demo/demo" --json > "$work/$kind/client.json"
  secret=$(python -c "import json,sys; print(json.load(sys.stdin)['client_secret'])" \
           < "$work/$kind/client.json")
}

stop() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; server=""; }

echo "W1 software vs pkcs11 (SoftHSM2), SQLite, workers=$workers, ${duration}s, concurrency 32"
for i in $(seq 1 "$runs"); do
  for kind in software pkcs11; do
    start "$kind"
    backend=$(tessera keys list --tenant demo --json \
              | python -c "import json,sys; print(sorted({k['backend'] for k in json.load(sys.stdin)}))")
    python "$here/bench_tokens.py" --duration "$duration" --warmup 3 --concurrency 32 --json \
        --issuer "$TESSERA_BASE_URL/t/demo" --client-id bench --client-secret="$secret" \
        | python "$work/line.py" "$kind" "$i"
    echo "    keys of tenant demo held by: $backend"
    stop
  done
done
