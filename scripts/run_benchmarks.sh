#!/usr/bin/env bash
# Run the token workloads of shared/specs/performance.md against a fresh local tessera and
# print one line per run. Starts its own server(s) in a temporary directory and stops them.
#
#   scripts/run_benchmarks.sh [sqlite|postgres] [workers] [duration] [runs]
#
# postgres needs TESSERA_BENCH_POSTGRES_URL (postgresql+asyncpg://...; the database is wiped).
# W1: client credentials + DPoP; W3: introspection; W2: ID-JAG round trip (two tenants).
# TESSERA_BENCH_WORKLOADS="W2" (default "W1 W3 W2") runs only those (profiling one of them).
set -uo pipefail
backend=${1:-sqlite}; workers=${2:-1}; duration=${3:-20}; runs=${4:-3}
# a free port unless told (a server left on a fixed port would be benchmarked instead)
port=${TESSERA_BENCH_PORT:-$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
cd "$work"
if [ "$backend" = postgres ]; then
  : "${TESSERA_BENCH_POSTGRES_URL:?set TESSERA_BENCH_POSTGRES_URL}"
  export TESSERA_DATABASE_URL=$TESSERA_BENCH_POSTGRES_URL
  # PostgreSQL has no "next to the database": name where serve creates the secrets
  export TESSERA_MASTER_KEY_FILE="$work/tessera-master.key"
  export TESSERA_ADMIN_TOKEN_FILE="$work/tessera-admin.token" TESSERA_DEMO_FILE="$work/demo.json"
  python - <<'PY'
import asyncio, os
from sqlalchemy import text
from tenants.db import Base, create_engine
import tenants.models  # noqa: F401
async def wipe():
    e = create_engine(os.environ["TESSERA_DATABASE_URL"])
    async with e.begin() as c:
        await c.run_sync(Base.metadata.drop_all)
        await c.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await e.dispose()
asyncio.run(wipe())
PY
else
  export TESSERA_DATABASE_URL="sqlite+aiosqlite:///$work/tessera.db"
fi
export TESSERA_BASE_URL="http://127.0.0.1:$port"
issuer="$TESSERA_BASE_URL/t"
tessera serve --port "$port" --workers "$workers" > server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; [ -n "${TESSERA_BENCH_KEEP:-}" ] || rm -rf "$work"; [ -n "${TESSERA_BENCH_KEEP:-}" ] && echo "kept $work"' EXIT
for _ in $(seq 1 100); do curl -fs "$TESSERA_BASE_URL/healthz" >/dev/null && break; sleep 0.2; done
kill -0 "$server" 2>/dev/null || { echo "tessera serve did not start:" >&2; cat server.log >&2; exit 1; }

field() { python -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
bench=$(tessera client create --tenant demo --name bench --client-id bench --dpop-required \
        --audience "$issuer/demo/demo" --json | field client_secret)
tessera tenant create acme --json >/dev/null; tessera tenant create pricing --json >/dev/null
agent_json=$(tessera client create --tenant acme --name agent --json)
agent=$(echo "$agent_json" | field client_id); agent_secret=$(echo "$agent_json" | field client_secret)
rc_json=$(tessera client create --tenant pricing --name agent --audience "$issuer/pricing/demo" \
          --scope read --json)
rc=$(echo "$rc_json" | field client_id); rc_secret=$(echo "$rc_json" | field client_secret)
tessera trust add --tenant acme --peer-tenant pricing --send --json >/dev/null
tessera trust add --tenant pricing --peer-tenant acme --accept --json >/dev/null
tessera connection set --tenant acme --client="$agent" --audience "$issuer/pricing" \
    --remote-client-id="$rc" --grant read --json >/dev/null
id_token=$(tessera id-token --tenant acme --client="$agent" --sub alice --lifetime 3600)

cat > line.py <<'PY'
import json, sys
r = json.load(sys.stdin)
lat = r["latency_ms"]
print(f"{sys.argv[1]} run {sys.argv[2]}: {r['throughput_per_s']:.0f}/s p50 {lat['p50']:.1f} ms "
      f"p99 {lat['p99']:.1f} ms errors {r['errors_total']}")
if r["errors_total"]:
    print("   ", r["errors"], r["error_samples"][:2])
PY
run() {  # label, bench args...
  local label=$1; shift
  for i in $(seq 1 "$runs"); do
    python "$here/bench_tokens.py" --duration "$duration" --warmup 3 --concurrency 32 --json "$@" \
      | python line.py "$label" "$i"
  done
}
echo "backend=$backend workers=$workers duration=${duration}s concurrency=32 ($(nproc) cores shared with the load generator)"
# --name=value: a generated secret or client_id may start with "-" (argparse would take it
# for an option)
only=" ${TESSERA_BENCH_WORKLOADS:-W1 W3 W2} "
[[ $only == *" W1 "* ]] && run "W1 token+DPoP " --issuer "$issuer/demo" --client-id bench --client-secret="$bench"
[[ $only == *" W3 "* ]] && run "W3 introspect " --issuer "$issuer/demo" --client-id bench --client-secret="$bench" --mode introspect
[[ $only == *" W2 "* ]] && run "W2 ID-JAG trip" --mode idjag --issuer "$issuer/acme" --client-id="$agent" --client-secret="$agent_secret" \
    --audience "$issuer/pricing" --resource-client-id="$rc" --resource-client-secret="$rc_secret" \
    --id-token="$id_token"
echo "server RSS: $(ps -o rss= -p $server | awk '{printf "%.0f MB", $1/1024}')"
