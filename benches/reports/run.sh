#!/usr/bin/env bash
# The monthly department report over a million tickets: the API against the same figures
# written by hand in psql, in one run, as a ratio. PostgreSQL only; needs a release build.
#   bash benches/reports/run.sh            (TICKETS=100000 for a quicker run)
set -euo pipefail
cd "$(dirname "$0")/../.."
ADMIN_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
TICKETS=${TICKETS:-1000000}
RUNS=${RUNS:-5}
DB=gw_report_bench
URL="${ADMIN_URL%/*}/$DB"
PORT=18099

psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
cargo build --release --quiet
export GRIDWHISTLE_DATABASE_URL="$URL" GRIDWHISTLE_LOG__LEVEL=warn
./target/release/gridwhistle seed-demo > /dev/null
started=$(date +%s)
psql -q "$URL" -v n="$TICKETS" -f benches/reports/generate.sql
echo "loaded $TICKETS tickets in $(( $(date +%s) - started )) s"

GRIDWHISTLE_HTTP__PORT=$PORT ./target/release/gridwhistle serve > /dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break; sleep 0.2; done
token=$(curl -s "http://127.0.0.1:$PORT/api/v1/auth/token" -H 'content-type: application/json' \
  -d '{"username":"demo-supervisor","password":"gridwhistle-demo"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
city_path=$(psql -Atq "$URL" -c "SELECT path FROM grid_units WHERE code = '140900'")

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
api=$(for _ in $(seq 1 "$RUNS"); do
  curl -s -o /dev/null -w '%{time_total}\n' -H "authorization: Bearer $token" \
    "http://127.0.0.1:$PORT/api/v1/reports/sla?from=2026-11-01&to=2026-11-30&group_by=department"
done | median)
sql=$(for _ in $(seq 1 "$RUNS"); do
  s=$(date +%s.%N); psql -q "$URL" -v path="$city_path" -f benches/reports/report.sql > /dev/null; e=$(date +%s.%N)
  echo "$e - $s" | bc
done | median)
echo "API (HTTP, median of $RUNS): ${api} s"
echo "hand-written SQL in psql (median of $RUNS): ${sql} s"
echo "ratio API / SQL: $(echo "scale=2; $api / $sql" | bc)"
