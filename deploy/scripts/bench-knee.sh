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
. deploy/scripts/bench-onecore.sh
start_media 18011
taskset -c 1 ./vload -url ws://127.0.0.1:18011/ws -lean -audio -steps "$steps" \
  -warmup "${WARMUP:-5s}" -duration "${WINDOW:-10s}" -svg "$svg"
echo "chart: $svg"
