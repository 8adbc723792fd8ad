#!/usr/bin/env bash
# Measures how long classes take to come back when their media node dies:
# two vclass-media nodes on one Redis (all on loopback), ROOMS rooms of
# PER_ROOM Go sessions (client.Session) each publishing synthetic video and
# receiving the others. Once everyone receives everyone, node 1 is killed
# (-9); vclass-load prints, for each room that was on it, the time until
# every session of the room receives every other again.
# Usage: deploy/scripts/bench-failover.sh [ROOMS] [PER_ROOM]   (default: 10 4)
set -euo pipefail
cd "$(dirname "$0")/../.."
rooms=${1:-10}
per=${2:-4}
work=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/vm" ./cmd/vclass-media
go build -o "$work/vload" ./cmd/vclass-load
cd "$work"
redis-server --port 16379 --bind 127.0.0.1 --save "" --appendonly no > redis.log 2>&1 &
pids=()
for n in 1 2; do
  cat > "media$n.json" <<JSON
{"MediasoupSettings": {"WorkerSettings": {"LogLevel": "warn", "RtcMinPort": 4${n}000, "RtcMaxPort": 4${n}099},
  "RouterSettings": {"RtpCodecCapabilities": [
    {"Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "Channels": 2},
    {"Kind": "video", "MimeType": "video/VP8", "ClockRate": 90000}]},
  "WebRtcTransportSettings": {"ListenIps": [{"Ip": "127.0.0.1", "AnnouncedIp": "127.0.0.1"}]}},
 "MeetingServerSettings": {"ServeMode": "Open"}, "AuthSettings": {"AllowEmptyTickets": true}}
JSON
  VCLASS_REDIS_URL=redis://127.0.0.1:16379/0 VCLASS_NODE_ID=media-$n \
    VCLASS_PUBLIC_URL=ws://127.0.0.1:1801$n/ws VCLASS_INTERNAL_URL=http://127.0.0.1:1801$n \
    ./vm -config "media$n.json" -http 127.0.0.1:1801$n > "media$n.log" 2>&1 &
  pids+=($!)
done
for n in 1 2; do # up (the binary asks its own /healthz)
  until VCLASS_HTTP_ADDR=127.0.0.1:1801$n ./vm -healthcheck 2>/dev/null; do
    kill -0 "${pids[$((n-1))]}" 2>/dev/null || { cat "media$n.log"; exit 1; }
    sleep 0.2
  done
done
./vload -failover -url ws://127.0.0.1:18011/ws,ws://127.0.0.1:18012/ws -rooms "$rooms" -per-room "$per" \
  -frame-bytes 2500 -duration 60s > load.log 2>&1 &
load=$!
until grep -q '^ready' load.log; do
  kill -0 "$load" 2>/dev/null || { cat load.log; exit 1; }
  sleep 0.2
done
kill -9 "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
echo "killed node 1 at $(date +%T.%N | cut -c1-12)"
wait "$load" || { cat load.log; exit 1; }
cat load.log
