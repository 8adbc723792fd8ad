# Sourced by the one-core benchmarks (bench-knee.sh, bench-rooms.sh): builds
# vclass-media and vclass-load into a scratch folder (removed on exit),
# changes to it, writes the server's config (VP8 with NACK, PLI and
# transport-wide congestion control, Opus; media on 127.0.0.1) and gives
# start_media, which starts the server pinned to CPU 0 on PORT and waits
# until it answers. The load tool runs pinned to CPU 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
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

# start_media PORT: vclass-media on 127.0.0.1:PORT, CPU 0; its pid in media_pid.
start_media() {
  taskset -c 0 ./vm -config media.json -http "127.0.0.1:$1" > media.log 2>&1 &
  media_pid=$!
  for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$1/healthz" > /dev/null && return 0
    sleep 0.1
  done
  cat media.log >&2
  exit 1
}
