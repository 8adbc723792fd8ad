#!/usr/bin/env bash
# The whole test suite of vclass: static checks, then every Go test with the
# race detector, end-to-end tests included (real vclass-media processes,
# headless Chromium, ffmpeg, the Docker kit built and brought up). Installs the
# Debian packages the tests use when
# they are missing. Usage: deploy/scripts/test.sh [go test flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."

# Debian packages the tests drive, by the command each provides.
declare -A packages=(
  [redis-server]=redis-server
  [chromium]=chromium
  [ffmpeg]=ffmpeg
  [ffprobe]=ffmpeg
  [openssl]=openssl
  [nginx]=nginx
  [npm]=npm
  [docker-compose]=docker-compose
  [dockerd]=docker.io
  [debootstrap]=debootstrap
  [unshare]=util-linux
  [ip]=iproute2
  [tc]=iproute2
)
missing=()
for cmd in "${!packages[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${packages[$cmd]}")
done
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "== installing ${missing[*]} (Debian packages)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    echo "could not install ${missing[*]}" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
    echo "(outside CI the tests that need them are skipped)" >&2
  fi
fi

# step NAME: starts a step, saying how long the one before took.
last=$SECONDS
step() {
  echo "== $* (at $((SECONDS / 60))m$((SECONDS % 60))s; the step before took $((SECONDS - last))s)"
  last=$SECONDS
}

step gofmt
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi

step go vet
go vet ./...

step staticcheck
staticcheck_version=v0.8.2 # honnef.co/go/tools
if ! command -v staticcheck >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/staticcheck" ]; then
  go install "honnef.co/go/tools/cmd/staticcheck@${staticcheck_version}"
fi
PATH="$PATH:$(go env GOPATH)/bin" staticcheck ./...

step go test -race
go test -race -count=1 -timeout 25m "$@" ./...

# Every fuzz target for a bounded time (VCLASS_FUZZTIME, 5 s by default, to keep
# the whole run under 30 minutes on two cores),
# from its committed seed corpus on; longer runs: deploy/scripts/fuzz.sh -t 10m.
step "fuzz (${VCLASS_FUZZTIME:-5s} per target)"
./deploy/scripts/fuzz.sh -t "${VCLASS_FUZZTIME:-5s}"

# Tests that measure what a class of thirty costs: the race detector would
# slow their in-process publishers past what two cores carry, so they run
# without it (under -race they skip, saying so).
step "go test (measured, no race detector)"
go test -count=1 -timeout 10m -run 'TestThirtyTilesGetWhatTheyShow' "$@" ./e2e
step "done"
