#!/usr/bin/env bash
# Measures vclass-recorder's CPU and memory per concurrent recording: for
# each N, a fresh recorder (pinned to CPU 1) records N rooms of one
# publisher each (synthetic VP8 at ~1 Mbps and Opus) relayed by vclass-media
# (pinned, with the load generator, to CPU 0). Loopback only.
# Usage: deploy/scripts/bench-recorder.sh [N...]   (default: 1 10 50)
# To compare recorders of several commits in one run (the machine's noise
# moves figures more between runs than within one), name them in COMMITS;
# each N is then run for each in turn, ROUNDS times:
#   COMMITS="56724cb HEAD" ROUNDS=3 deploy/scripts/bench-recorder.sh 50
set -euo pipefail
cd "$(dirname "$0")/../.."
counts=("${@:-1 10 50}")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"; git worktree prune' EXIT
go build -o "$work/vm" ./cmd/vclass-media
go build -o "$work/vload" ./cmd/vclass-load
builds=()
if [ -z "${COMMITS:-}" ]; then
  go build -o "$work/vr" ./cmd/vclass-recorder
  builds=(vr)
else
  for c in $COMMITS; do
    git worktree add -q --detach "$work/src" "$c"
    (cd "$work/src" && go build -o "$work/vr-$c" ./cmd/vclass-recorder)
    git worktree remove --force "$work/src"
    builds+=("vr-$c")
  done
fi
cd "$work"
openssl req -x509 -newkey rsa:2048 -nodes -keyout k.pem -out c.pem -days 1 -subj /CN=localhost 2>/dev/null
openssl pkcs12 -export -in c.pem -inkey k.pem -out recorder.pfx -passout pass:recpass
cat > media.json <<'JSON'
{"MediasoupSettings": {"WorkerSettings": {"LogLevel": "warn", "RtcMinPort": 40000, "RtcMaxPort": 40099},
  "RouterSettings": {"RtpCodecCapabilities": [
    {"Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "Channels": 2},
    {"Kind": "video", "MimeType": "video/VP8", "ClockRate": 90000}]},
  "WebRtcTransportSettings": {"ListenIps": [{"Ip": "127.0.0.1", "AnnouncedIp": "127.0.0.1"}]}},
 "MeetingServerSettings": {"ServeMode": "Open"}, "AuthSettings": {"AllowEmptyTickets": true}}
JSON
cat > config.json <<'JSON'
{"Logging": {"LogDir": "logs"},
 "Service": {"Kestrel": {"EndPoints": {"Https": {"Url": "https://127.0.0.1:18443",
   "Certificate": {"Path": "recorder.pfx", "Password": "recpass"}}}},
   "Credentials": {"Username": "admin", "Password": "recsite"}},
 "Recording": {"RecordingDir": "records", "Clients": [
   {"Credentials": {"Username": "user1", "Password": "user1"}, "Host": "https://wt.local", "Slots": 200}]}}
JSON
export VCLASS_AUTH_SECRET=bench-secret-0123456789abcdef0123456789
taskset -c 0 ./vm -config media.json -http 127.0.0.1:18011 > media.log 2>&1 &
sleep 1
for round in $(seq "${ROUNDS:-1}"); do
  for n in ${counts[*]}; do
    for vr in "${builds[@]}"; do
      rm -rf records
      VCLASS_MEDIA_URL=ws://127.0.0.1:18011/ws taskset -c 1 "./$vr" -config config.json > recorder.log 2>&1 &
      rec=$!
      sleep 1
      echo "== N = $n ($vr, round $round)"
      taskset -c 0 ./vload -url ws://127.0.0.1:18011/ws -recorder https://127.0.0.1:18443 -insecure \
        -recordings "$n" -frame-bytes 4200 -warmup 8s -duration 20s
      kill "$rec"; wait "$rec" || true
      sleep 2
    done
  done
done
