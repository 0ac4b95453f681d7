#!/usr/bin/env bash
# The read path under load, on PostgreSQL with the release build:
#   bash benches/load/run.sh
# Loads a generated data set (TICKETS, default 100000, with benches/reports/generate.sql) into
# a private database (bench_load on the shared server, dropped and re-created), starts the
# release server on it and measures, with oha (installed into target/tools on first use):
#   1. single-ticket reads, closed loop with 8 connections: throughput, latency, server CPU/req
#   2. list pages of 50 (the default summary view), the same way
#   3. the mixed scenario at a fixed arrival rate (RATE, default 500/s, for DURATION):
#      70 % lists and department inboxes, 20 % single reads, 10 % writes (file, acknowledge,
#      resolve): throughput, p50/p99/p99.9 over every request, server CPU per request
#   4. the statements of one read and one list page run directly with pgbench (8 clients):
#      the database's own limit, and the API's throughput as a ratio of it.
# Figures on a machine shared with builds move a lot: run it twice and compare ratios.
# BIN=path/to/gridwhistle measures another build (e.g. the branch base) against the same data:
# each run re-creates bench_load and lets its binary migrate it and seed the demo set, so an
# older build gets its own schema (it refuses a database migrated by a newer one) and the same
# random draws from the generator (its random() is seeded; ticket ids stay random UUIDs).
set -euo pipefail
BIN=${BIN:+$(realpath "$BIN")}
cd "$(dirname "$0")/../.."
ADMIN_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
TICKETS=${TICKETS:-100000}
RATE=${RATE:-500}
DURATION=${DURATION:-30}
CLOSED=${CLOSED:-10}
PORT=${PORT:-56401}
DB=bench_load
URL="${ADMIN_URL%/*}/$DB"
BASE="http://127.0.0.1:$PORT"
TARGET=${CARGO_TARGET_DIR:-target}
WORK="$TARGET/bench-load"
mkdir -p "$WORK"

# Debian packages the script calls; installed when missing (the benchmark machine is root).
missing=()
for tool in jq:jq pgbench:postgresql-client psql:postgresql-client bc:bc curl:curl; do
  command -v "${tool%%:*}" > /dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} with apt-get"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" > /dev/null
fi

OHA="$TARGET/tools/bin/oha"
if [ ! -x "$OHA" ]; then
  echo "installing oha into $TARGET/tools (once; minutes, far more on a busy machine)"
  # A build folder of its own, kept until the install succeeds: an interrupted install resumes.
  CARGO_TARGET_DIR="$TARGET/tools/build" cargo install oha --locked --version 1.16.0 --root "$TARGET/tools" --quiet
  rm -rf "$TARGET/tools/build"
fi
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin gridwhistle
  BIN="$TARGET/release/gridwhistle"
fi

psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
export GRIDWHISTLE_DATABASE_URL="$URL" GRIDWHISTLE_LOG__LEVEL=warn
"$BIN" seed-demo > /dev/null
started=$(date +%s)
# One session, so the seed holds for the generator's random(): every build gets the same draws.
psql -q "$URL" -v n="$TICKETS" -c "SELECT setseed(0.15)" -f benches/reports/generate.sql > /dev/null
# The department inbox of demo-dept: the open dispatches of the data set are its department's.
psql -q "$URL" -c "UPDATE dispatches SET department_id = (SELECT department_id FROM users WHERE username = 'demo-dept')
                   WHERE status IN ('pending', 'acknowledged')" -c "ANALYZE"
echo "loaded $TICKETS tickets in $(( $(date +%s) - started )) s"

# Writers file far faster than people; the rate limits have tests of their own.
GRIDWHISTLE_HTTP__PORT=$PORT GRIDWHISTLE_SECURITY__FILING_PER_MINUTE_PER_TOKEN=1000000 \
  GRIDWHISTLE_SECURITY__LOGIN_PER_MINUTE_PER_IP=1000000 "$BIN" serve > "$WORK/server.log" 2>&1 &
server=$!
# Wait for the exit, so a run straight after this one finds the port free.
trap 'kill $server 2>/dev/null && wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do curl -sf "$BASE/readyz" > /dev/null && break; sleep 0.2; done
curl -sf "$BASE/readyz" > /dev/null || { echo "the server did not get ready:"; tail "$WORK/server.log"; exit 1; }
echo "measuring $BIN"

token() {
  curl -s "$BASE/api/v1/auth/token" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"gridwhistle-demo\"}" | jq -r .access_token
}
SUPERVISOR=$(token demo-supervisor)
DISPATCHER=$(token demo-dispatcher)
DEPT=$(token demo-dept)
GRID=$(token demo-grid)
q() { psql -Atq "$URL" -c "$1"; }

# Targets: random tickets, the department's open dispatches (each used at most once), list pages.
q "SELECT '$BASE/api/v1/tickets/' || id FROM tickets ORDER BY random() LIMIT 5000" > "$WORK/tickets.txt"
q "SELECT '$BASE/api/v1/dispatches/' || id || '/acknowledge' FROM dispatches WHERE status = 'pending' ORDER BY random()" > "$WORK/ack.txt"
q "SELECT '$BASE/api/v1/dispatches/' || id || '/resolve' FROM dispatches WHERE status = 'acknowledged' ORDER BY random()" > "$WORK/resolve.txt"
category=$(q "SELECT id FROM categories ORDER BY code LIMIT 1")
grid=$(q "SELECT unit_id FROM users WHERE username = 'demo-grid'")
{
  echo "$BASE/api/v1/tickets?limit=50"
  echo "$BASE/api/v1/tickets?limit=50&status=in_progress"
  echo "$BASE/api/v1/tickets?limit=50&overdue=true"
  echo "$BASE/api/v1/tickets?limit=50&category=$category"
  echo "$BASE/api/v1/tickets?limit=50&created_from=2026-10-01T00:00:00Z&created_to=2026-10-08T00:00:00Z"
} > "$WORK/lists.txt"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
hz=$(getconf CLK_TCK)
json_field() { jq -r "$1" "$2"; }

closed_loop() { # name token urls-file
  local before after
  before=$(cpu_ticks)
  "$OHA" --no-tui --output-format json -z "${CLOSED}s" -c 8 --urls-from-file "$3" \
    -H "authorization: Bearer $2" > "$WORK/$1.json"
  after=$(cpu_ticks)
  local rps n
  rps=$(json_field '.summary.requestsPerSec' "$WORK/$1.json")
  n=$(jq '[.statusCodeDistribution[]] | add' "$WORK/$1.json")
  printf '%-12s %6.0f req/s  p50 %6.2f ms  p99 %6.2f ms  p99.9 %6.2f ms  server CPU %.3f ms/req  (%s)\n' \
    "$1" "$rps" \
    "$(json_field '.latencyPercentiles.p50 * 1000' "$WORK/$1.json")" \
    "$(json_field '.latencyPercentiles.p99 * 1000' "$WORK/$1.json")" \
    "$(json_field '.latencyPercentiles["p99.9"] * 1000' "$WORK/$1.json")" \
    "$(echo "scale=6; ($after - $before) * 1000 / $hz / $n" | bc)" \
    "$(jq -c '.statusCodeDistribution' "$WORK/$1.json")"
  echo "$rps" > "$WORK/$1.rps"
}

echo "== closed loop, 8 connections, ${CLOSED}s each"
# Warm the caches and the pool first.
"$OHA" --no-tui -z 3s -c 8 --urls-from-file "$WORK/tickets.txt" -H "authorization: Bearer $SUPERVISOR" > /dev/null
closed_loop single_read "$SUPERVISOR" "$WORK/tickets.txt"
closed_loop list_page "$SUPERVISOR" "$WORK/lists.txt"
bytes=$(curl -s -H "authorization: Bearer $SUPERVISOR" "$BASE/api/v1/tickets?limit=50" | wc -c)
gz=$(curl -s -H "authorization: Bearer $SUPERVISOR" -H 'accept-encoding: gzip' "$BASE/api/v1/tickets?limit=50" | wc -c)
echo "list page of 50: $bytes bytes, $gz bytes with Accept-Encoding: gzip"

echo "== mixed scenario: $RATE req/s for ${DURATION}s (70 % lists/inbox, 20 % reads, 10 % writes)"
rm -f "$WORK"/mixed-*
streams=()
stream() { # name rate token urls-file [oha args…]
  local name=$1 rate=$2 tok=$3 urls=$4
  shift 4
  "$OHA" --no-tui --output-format json -z "${DURATION}s" -q "$rate" --latency-correction -c 64 \
    --urls-from-file "$urls" -H "authorization: Bearer $tok" --db-url "$WORK/mixed-$name.db" "$@" \
    > "$WORK/mixed-$name.json" 2> "$WORK/mixed-$name.err" &
  streams+=($!)
}
r() { echo "scale=2; $RATE * $1" | bc; }
before=$(cpu_ticks)
stream lists "$(r 0.40)" "$SUPERVISOR" "$WORK/lists.txt"
echo "$BASE/api/v1/dispatches?status=pending&limit=50" > "$WORK/inbox.txt"
stream inbox "$(r 0.15)" "$DEPT" "$WORK/inbox.txt"
echo "$BASE/api/v1/tickets?limit=50" > "$WORK/township.txt"
stream township "$(r 0.15)" "$DISPATCHER" "$WORK/township.txt"
stream reads "$(r 0.20)" "$SUPERVISOR" "$WORK/tickets.txt"
echo "$BASE/api/v1/tickets" > "$WORK/file.txt"
stream file "$(r 0.04)" "$GRID" "$WORK/file.txt" -m POST -T application/json \
  -d "{\"category_id\":\"$category\",\"title\":\"压测：路灯不亮\",\"description\":\"压测\",\"grid_unit_id\":\"$grid\",\"attachments\":[]}"
stream acknowledge "$(r 0.03)" "$DEPT" "$WORK/ack.txt" -m POST -T application/json -d '{}'
stream resolve "$(r 0.03)" "$DEPT" "$WORK/resolve.txt" -m POST -T application/json -d '{"reply":"已修复"}'
# Only the streams: a bare `wait` would wait for the server too, for ever.
wait "${streams[@]}"
after=$(cpu_ticks)

# Every request of every stream, for percentiles over the whole mix. oha stores every answered
# request (any status; connection errors are left out); latency counts from the intended start
# (no coordinated omission).
python3 - "$WORK" "$DURATION" "$(echo "scale=6; ($after - $before) * 1000 / $hz" | bc)" <<'PY'
import glob, json, sqlite3, sys
work, duration, cpu_ms = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
durations, by_stream, total = [], {}, 0
for path in sorted(glob.glob(f"{work}/mixed-*.json")):
    name = path.rsplit("mixed-", 1)[1][:-5]
    codes = json.load(open(path)).get("statusCodeDistribution", {})
    total += sum(codes.values())
    rows = sqlite3.connect(f"{work}/mixed-{name}.db").execute(
        "SELECT end - COALESCE(start_latency_correction, start) FROM oha").fetchall()
    by_stream[name] = codes
    durations += [d for (d,) in rows]
durations.sort()
n = len(durations)
pick = lambda p: durations[min(n - 1, int(p * n))] * 1000
print(f"mixed: {total} requests ({n} answered), {total / duration:.0f} req/s, p50 {pick(0.5):.2f} ms, "
      f"p99 {pick(0.99):.2f} ms, p99.9 {pick(0.999):.2f} ms (answered), server CPU {cpu_ms / total:.3f} ms/req")
print("  status codes per stream:", json.dumps(by_stream))
PY

echo "== pgbench: the statements of one read and of one list page, 8 clients, ${CLOSED}s"
hash=$(printf '%s' "$SUPERVISOR" | sha256sum | cut -d' ' -f1)
city=$(q "SELECT path FROM grid_units WHERE code = '140900'")
cat > "$WORK/read.sql" <<SQL
\set n random(1, $TICKETS)
SELECT u.id, u.username, u.role, u.unit_id, u.department_id, g.path, t.expires_at FROM api_tokens t
  JOIN users u ON t.user_id = u.id LEFT JOIN grid_units g ON u.unit_id = g.id
  WHERE t.token_hash = '$hash' AND t.revoked_at IS NULL AND t.expires_at > now() AND u.active;
SELECT t.*, g.path AS unit_path FROM tickets t LEFT JOIN grid_units g ON t.unit_id = g.id
  WHERE t.number = 'BENCH-' || lpad(:n::text, 7, '0');
SELECT d.*, dep.name FROM dispatches d LEFT JOIN departments dep ON dep.id = d.department_id
  WHERE d.ticket_id = (SELECT id FROM tickets WHERE number = 'BENCH-' || lpad(:n::text, 7, '0'));
SQL
cat > "$WORK/list.sql" <<SQL
SELECT u.id, u.username, u.role, u.unit_id, u.department_id, g.path, t.expires_at FROM api_tokens t
  JOIN users u ON t.user_id = u.id LEFT JOIN grid_units g ON u.unit_id = g.id
  WHERE t.token_hash = '$hash' AND t.revoked_at IS NULL AND t.expires_at > now() AND u.active;
WITH page AS (SELECT t.*, g.path AS unit_path FROM tickets t LEFT JOIN grid_units g ON t.unit_id = g.id
  WHERE t.unit_id IN (SELECT id FROM grid_units WHERE path LIKE '$city%') ORDER BY t.id DESC LIMIT 51)
SELECT p.id, d.id, c.id FROM page p LEFT JOIN dispatches d ON d.ticket_id = p.id LEFT JOIN sla_clocks c ON c.ticket_id = p.id;
SQL
for kind in read list; do
  pgbench -n -c 8 -j 2 -T "$CLOSED" -f "$WORK/$kind.sql" "$URL" > "$WORK/pgbench-$kind.txt" 2>&1 ||
    { cat "$WORK/pgbench-$kind.txt"; exit 1; }
  tps=$(awk '/^tps/ {print $3}' "$WORK/pgbench-$kind.txt")
  api=$(cat "$WORK/$([ $kind = read ] && echo single_read || echo list_page).rps")
  printf 'pgbench %-5s %8.0f tx/s   API / pgbench = %.2f\n' "$kind" "$tps" "$(echo "scale=4; $api / $tps" | bc)"
done
