#!/usr/bin/env bash
# The whole suite, from a clean clone: dependencies, a private InfluxDB on a free port, typecheck, lint,
# then every unit and integration test. Extra arguments go to vitest (e.g. a file or -t "name").
# Set FIELDQ_TEST_INFLUX_URL to use an InfluxDB 1.x that is already running instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
missing=()
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "missing: ${missing[*]}. The tests use mosquitto_pub as a real C MQTT client, drive Debian's chromium" \
      "for the dashboard, and start their own Mosquitto and Redis servers for the scale-out" \
      "(Debian: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

if [ -z "${FIELDQ_TEST_INFLUX_URL:-}" ]; then
  dir=.fieldq/test-influxdb
  bash scripts/influxd.sh stop "$dir"
  rm -rf "$dir"
  FIELDQ_TEST_INFLUX_URL=$(bash scripts/influxd.sh start "$dir")
  trap 'bash scripts/influxd.sh stop "$dir"' EXIT
  echo "InfluxDB for the tests: $FIELDQ_TEST_INFLUX_URL ($(influxd version 2>/dev/null | head -1))"
fi
export FIELDQ_TEST_INFLUX_URL

echo "== typecheck"
npx tsc -p tsconfig.json --noEmit
npx tsc -p dashboard/client/tsconfig.json --noEmit
echo "== lint"
npx biome check .
echo "== tests"
npx vitest run "$@"
