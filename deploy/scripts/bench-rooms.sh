#!/usr/bin/env bash
# Many small classes against one big one, on one core: what a forwarded
# packet costs vclass-media when each publisher is sent to a few
# subscribers rather than to hundreds. Both runs have the same number of
# subscribing transports, down tracks and packets out per second:
#   one room:  5 publishers, 300 lean subscribers (each receives 5 cameras and 5 microphones)
#   rooms:     50 rooms of 6, every member publishing and receiving the other 5
# Every stream is synthetic VP8 (-fps, -frame-bytes) and Opus (50 packets/s).
# The server is pinned to CPU 0, the load tool to CPU 1. Loopback only.
# Usage: deploy/scripts/bench-rooms.sh [ROUNDS]
#   (default 2 rounds of both; FPS and FRAME_BYTES set the camera, default
#   15 and 2200: 30 packets/s, about 260 kbit/s; WARMUP and WINDOW default
#   10s and 20s)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-2}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/vm" ./cmd/vclass-media
go build -o "$work/vload" ./cmd/vclass-load
cd "$work"
cat > media.json <<'JSON'
{"MediasoupSettings": {"WorkerSettings": {"LogLevel": "warn", "RtcMinPort": 40000, "RtcMaxPort": 40009},
  "RouterSettings": {"RtpCodecCapabilities": [
    {"Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "Channels": 2},
    {"Kind": "video", "MimeType": "video/VP8", "ClockRate": 90000,
     "RtcpFeedback": [{"Type": "nack"}, {"Type": "nack", "Parameter": "pli"}, {"Type": "transport-cc"}]}]},
  "WebRtcTransportSettings": {"ListenIps": [{"Ip": "127.0.0.1", "AnnouncedIp": "127.0.0.1"}]}},
 "MeetingServerSettings": {"ServeMode": "Open"}, "AuthSettings": {"AllowEmptyTickets": true}}
JSON
ulimit -n 65536 2>/dev/null || true
stream=(-lean -audio -fps "${FPS:-15}" -frame-bytes "${FRAME_BYTES:-2200}" -warmup "${WARMUP:-10s}" -duration "${WINDOW:-20s}")
# one fresh server per run: nothing of the last run's rooms is left
measure() {
  taskset -c 0 ./vm -config media.json -http 127.0.0.1:18021 > media.log 2>&1 &
  local vm=$!
  for _ in $(seq 50); do
    curl -sf http://127.0.0.1:18021/healthz > /dev/null && break
    sleep 0.1
  done
  curl -sf http://127.0.0.1:18021/healthz > /dev/null || { cat media.log >&2; exit 1; }
  taskset -c 1 ./vload -url ws://127.0.0.1:18021/ws "${stream[@]}" "$@"
  kill "$vm"
  wait "$vm" || true
}
for r in $(seq "$rounds"); do
  echo "== round $r: one room, 5 publishers, 300 subscribers"
  measure -publishers 5 -subscribers 300
  echo "== round $r: 50 rooms of 6"
  measure -rooms 50 -per-room 6
done
