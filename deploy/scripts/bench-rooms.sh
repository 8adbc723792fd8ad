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
rounds=${1:-2}
. "$(dirname "$0")/bench-onecore.sh"
stream=(-lean -audio -fps "${FPS:-15}" -frame-bytes "${FRAME_BYTES:-2200}" -warmup "${WARMUP:-10s}" -duration "${WINDOW:-20s}")
# one fresh server per run: nothing of the last run's rooms is left
measure() {
  start_media 18021
  taskset -c 1 ./vload -url ws://127.0.0.1:18021/ws "${stream[@]}" "$@"
  kill "$media_pid"
  wait "$media_pid" || true
}
for r in $(seq "$rounds"); do
  echo "== round $r: one room, 5 publishers, 300 subscribers"
  measure -publishers 5 -subscribers 300
  echo "== round $r: 50 rooms of 6"
  measure -rooms 50 -per-room 6
done
