#!/usr/bin/env bash
# One command from a fresh clone to a running monitor with a small simulated fleet:
# installs dependencies, starts a local InfluxDB (Debian's influxdb package, data under .fieldq/) unless
# FIELDQ_INFLUX_URL names one, generates a device secret and API tokens once, and prints how to look.
# --tls: also MQTT over TLS and an HTTPS API, with a development CA and certificate (scripts/dev-certs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
devices=${DEMO_DEVICES:-120}
tls=""
for arg in "$@"; do
  case $arg in
    --tls) tls=yes ;;
    -h | --help)
      echo "Usage: npm run demo [-- --tls]   (DEMO_DEVICES=N sets the fleet size, 120 by default: the home-demo scenario as written)"
      exit 0
      ;;
    *)
      echo "demo: unknown option $arg (usage: npm run demo [-- --tls])" >&2
      exit 2
      ;;
  esac
done

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== installing dependencies"
  npm ci --no-audit --no-fund
fi

started_influx=""
if [ -z "${FIELDQ_INFLUX_URL:-}" ]; then
  echo "== starting a local InfluxDB (data in .fieldq/influxdb)"
  FIELDQ_INFLUX_URL=$(bash scripts/influxd.sh start .fieldq/influxdb)
  started_influx=yes
fi
export FIELDQ_INFLUX_URL

# Secrets of this checkout's demo, made once and kept in .fieldq/demo.env; variables already set win.
mkdir -p .fieldq
if [ ! -f .fieldq/demo.env ]; then
  random() { node -e 'console.log(require("node:crypto").randomBytes(18).toString("base64url"))'; }
  {
    echo "FIELDQ_DEVICE_SECRET=$(random)"
    echo "FIELDQ_API_TOKENS=viewer:$(random),operator:$(random),admin:$(random)"
  } >.fieldq/demo.env
fi
# The alert webhook's secret, added to a demo.env made before alerts existed.
if ! grep -q '^FIELDQ_WEBHOOK_SECRET=' .fieldq/demo.env; then
  echo "FIELDQ_WEBHOOK_SECRET=$(node -e 'console.log(require("node:crypto").randomBytes(18).toString("base64url"))')" >>.fieldq/demo.env
fi
# shellcheck disable=SC1091
eval "$(sed -E 's/^([A-Z_]+)=(.*)$/export \1="${\1:-\2}"/' .fieldq/demo.env)"

free_or_next() {
  node -e '
    const net = require("node:net"); const want = Number(process.argv[1]);
    const s = net.createServer().once("error", () => { const t = net.createServer().listen(0, () => { console.log(t.address().port); t.close(); }); })
      .listen(want, () => { console.log(want); s.close(); });' "$1"
}
export FIELDQ_MQTT_PORT=${FIELDQ_MQTT_PORT:-$(free_or_next 1883)}
export FIELDQ_HTTP_PORT=${FIELDQ_HTTP_PORT:-$(free_or_next 8080)}
export FIELDQ_DATA_DIR=${FIELDQ_DATA_DIR:-.fieldq/data}
# Every alert goes to a local receiver (fieldq webhook-listen, printed below); until it runs, they wait in the
# outbox and are retried. The home-demo models' service promises are the example file's.
webhook_port=${DEMO_WEBHOOK_PORT:-$(free_or_next 9000)}
export FIELDQ_WEBHOOK_URL=${FIELDQ_WEBHOOK_URL:-http://127.0.0.1:$webhook_port/}
export FIELDQ_PROMISES=${FIELDQ_PROMISES:-docs/promises.example.yaml}

viewer=$(echo "$FIELDQ_API_TOKENS" | tr ',' '\n' | sed -n 's/^viewer://p' | head -1)
operator=$(echo "$FIELDQ_API_TOKENS" | tr ',' '\n' | sed -n 's/^operator://p' | head -1)
if [ -n "$tls" ]; then
  bash scripts/dev-certs.sh .fieldq/tls >/dev/null
  export FIELDQ_TLS_CERT=${FIELDQ_TLS_CERT:-.fieldq/tls/server.crt}
  export FIELDQ_TLS_KEY=${FIELDQ_TLS_KEY:-.fieldq/tls/server.key}
  export FIELDQ_MQTTS_PORT=${FIELDQ_MQTTS_PORT:-$(free_or_next 8883)}
  # Node clients (the simulator, sim score) trust the development CA through this.
  export NODE_EXTRA_CA_CERTS=.fieldq/tls/ca.crt
  base="https://localhost:$FIELDQ_HTTP_PORT"
  curl_ca="--cacert .fieldq/tls/ca.crt "
  node_ca="NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS "
else
  base="http://127.0.0.1:$FIELDQ_HTTP_PORT"
  curl_ca=""
  node_ca=""
fi
api="$base/api/v1"
cat <<MSG

== fieldq is starting with $devices simulated devices
   dashboard  $base/   (open it in a browser and sign in with a token below)
   token      $viewer   (viewer: reads)
   operator   $operator   (operator: also acknowledges, assigns, notes; all tokens are in .fieldq/demo.env)
   API        $api   (OpenAPI: $api/openapi.json)
   MQTT       mqtt://127.0.0.1:$FIELDQ_MQTT_PORT
   InfluxDB   $FIELDQ_INFLUX_URL, database ${FIELDQ_INFLUX_DB:-fieldq}
   try        curl $curl_ca-H "authorization: Bearer $viewer" "$api/faults?limit=5"
   score      ${node_ca}npm run fieldq -- sim score $FIELDQ_DATA_DIR/fieldq-truth-home-demo.json --api $base --token $viewer
              (what fieldq found of the home-demo scenario's injected problems: run it once the backfill of
              three days of history is done and the regression scan has run, about 3 minutes after the start)
   alerts     npm run fieldq -- webhook-listen --port $webhook_port --secret $FIELDQ_WEBHOOK_SECRET
              (run it in another terminal: it checks each alert's signature and prints it; alerts raised
              before it runs wait in the outbox and are retried until it answers)
   command    curl $curl_ca-X POST -H "authorization: Bearer $operator" -H "content-type: application/json" \\
                -d '{"type":"diagnostics"}' "$api/devices/printer-0001/commands"
              then  curl $curl_ca-H "authorization: Bearer $viewer" "$api/devices/printer-0001/commands"
              (or the buttons on the device's page: $base/devices/printer-0001)
   review     $base/review   (the management review: printable, CSV per table), or
              FIELDQ_INFLUX_URL=$FIELDQ_INFLUX_URL npm run fieldq -- report --from $(date -u -d '-3 days' +%Y-%m-%dT00:00:00Z) --to $(date -u +%Y-%m-%dT%H:00:00Z) --out review.html
   stop       Ctrl-C (the journal is flushed first)
MSG
if [ -n "$tls" ]; then
  key=$(node --import tsx cli/fieldq.ts device-key tls-check-1)
  cat <<MSG
   MQTT TLS   mqtts://localhost:$FIELDQ_MQTTS_PORT   (CA: .fieldq/tls/ca.crt; the simulator keeps to plain MQTT on loopback)
   publish    mosquitto_pub --cafile .fieldq/tls/ca.crt -h localhost -p $FIELDQ_MQTTS_PORT -q 1 \\
                -i tls-check-1 -u tls-check-1 -P $key -t fq/v1/tls-check-1/fault \\
                -m "{\"ts\":\$(date +%s)000,\"seq\":1,\"code\":\"TLS_CHECK\",\"severity\":\"info\"}"
MSG
fi
echo

# fieldq runs in the background so that Ctrl-C reaches it as SIGTERM and InfluxDB is stopped only after
# fieldq has flushed its journal into it.
cleanup() { if [ -n "$started_influx" ]; then bash scripts/influxd.sh stop .fieldq/influxdb; fi; }
trap cleanup EXIT
node --import tsx cli/fieldq.ts start --sim "$devices" &
fieldq=$!
trap 'kill -TERM "$fieldq" 2>/dev/null' INT TERM
status=0
while kill -0 "$fieldq" 2>/dev/null; do wait "$fieldq" || status=$?; done
exit "$status"
