#!/usr/bin/env bash
# Finds vclass-media's knee: one room, one publisher (synthetic VP8 of
# ~210 packets/s and Opus), lean subscribers (vclass-load -lean: real
# signaling, ICE, DTLS, NACKs and congestion feedback; packets counted by
# their headers) added in steps; at each step the server's CPU, packets
# out, RSS, the subscribers' loss and capture-to-arrival latency. The
# server is pinned to CPU 0, the load tool to CPU 1. Loopback only.
# Usage: deploy/scripts/bench-knee.sh [STEPS] [SVG]
#   (default: 100,200,...,1200 and docs/knee.svg; WARMUP and WINDOW set
#   each step's settling and measuring time, default 5s and 10s)
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-100,200,300,400,500,600,700,800,900,1000,1100,1200}
svg=$(realpath -m "${2:-docs/knee.svg}")
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
taskset -c 0 ./vm -config media.json -http 127.0.0.1:18011 > media.log 2>&1 &
for _ in $(seq 50); do
  curl -sf http://127.0.0.1:18011/healthz > /dev/null && break
  sleep 0.1
done
curl -sf http://127.0.0.1:18011/healthz > /dev/null || { cat media.log >&2; exit 1; }
taskset -c 1 ./vload -url ws://127.0.0.1:18011/ws -lean -audio -steps "$steps" \
  -warmup "${WARMUP:-5s}" -duration "${WINDOW:-10s}" -svg "$svg"
echo "chart: $svg"
