#!/usr/bin/env bash
# A private influxd for tests and the demo: its own config, data folder and free ports.
#   scripts/influxd.sh start [DIR]   prints the URL once /ping answers (DIR defaults to .fieldq/influxdb)
#   scripts/influxd.sh stop [DIR]
#   scripts/influxd.sh url [DIR]
set -euo pipefail

cmd=${1:-}
dir=${2:-.fieldq/influxdb}

free_port() { node -e 'const s=require("node:net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

ensure_installed() {
  command -v influxd >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "influxd is missing: installing Debian's influxdb package" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq influxdb >&2
  else
    echo "influxd is missing: install InfluxDB 1.x (Debian: sudo apt-get install influxdb), or set FIELDQ_INFLUX_URL to a running one" >&2
    exit 1
  fi
}

running() { [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; }

case "$cmd" in
  start)
    if running; then cat "$dir/url"; exit 0; fi
    ensure_installed
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    http_port=$(free_port)
    rpc_port=$(free_port)
    cat >"$dir/influxd.conf" <<CONF
reporting-enabled = false
bind-address = "127.0.0.1:$rpc_port"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$http_port"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  log-enabled = false
CONF
    # A session of its own: a Ctrl-C meant for fieldq must not stop InfluxDB before fieldq has flushed.
    setsid influxd -config "$dir/influxd.conf" >"$dir/influxd.log" 2>&1 < /dev/null &
    echo $! >"$dir/pid"
    url="http://127.0.0.1:$http_port"
    for _ in $(seq 1 150); do
      if curl -fs "$url/ping" >/dev/null 2>&1; then echo "$url" >"$dir/url"; echo "$url"; exit 0; fi
      if ! running; then break; fi
      sleep 0.2
    done
    echo "influxd did not answer on $url; its log:" >&2
    tail -20 "$dir/influxd.log" >&2
    exit 1
    ;;
  stop)
    if running; then
      pid=$(cat "$dir/pid")
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid" "$dir/url"
    ;;
  url) cat "$dir/url" ;;
  *) echo "usage: scripts/influxd.sh start|stop|url [DIR]" >&2; exit 2 ;;
esac
