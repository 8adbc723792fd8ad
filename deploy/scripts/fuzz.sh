#!/usr/bin/env bash
# Runs every fuzz target of the module (func FuzzXxx in a _test.go file) for
# a bounded time each, one after another: test.sh runs it with 5 s each,
# a longer run is by hand. A target that finds a failing input fails the
# run; Go writes that input under the package's testdata/fuzz/FuzzXxx/.
# Usage: deploy/scripts/fuzz.sh [-t DURATION] [TARGET-REGEXP]
#   deploy/scripts/fuzz.sh -t 10m               every target for 10 minutes
#   deploy/scripts/fuzz.sh -t 30m FuzzForwarder one target
set -euo pipefail
cd "$(dirname "$0")/../.."

fuzztime=10s
if [ "${1:-}" = "-t" ]; then
  fuzztime=$2
  shift 2
fi
filter=${1:-.}

module=$(go list -m)
cache=$(go env GOCACHE)/fuzz
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT

# files_in counts the files of a corpus folder (0 when there is none).
files_in() { if [ -d "$1" ]; then find "$1" -type f | wc -l; else echo 0; fi; }

failed=0
count=0
built=""
# "package-dir target" for each fuzz target, in a stable order. Each
# package's test binary is built once, with the fuzzer's instrumentation,
# and run for each of its targets from the package's directory (where its
# testdata/fuzz corpus is), with the go command's own fuzz cache.
while read -r dir target; do
  [[ "$target" =~ $filter ]] || continue
  count=$((count + 1))
  exe="$bin/${dir//\//_}.test"
  if [ "$built" != "$dir" ]; then
    go test -c -fuzz=. -o "$exe" "./$dir"
    built=$dir
  fi
  echo "-- $target ($dir, $fuzztime)"
  corpus="$dir/testdata/fuzz/$target"
  before=$(files_in "$corpus")
  if ! (cd "$dir" && "$exe" -test.run='^$' -test.fuzz="^${target}\$" -test.fuzztime="$fuzztime" \
      -test.fuzzcachedir="$cache/$module/$dir" >"$bin/out" 2>&1); then
    tail -n 30 "$bin/out"
    # Go 1.26's fuzz coordinator may report its own -fuzztime deadline as
    # a failure (go.dev/issue/75804, fixed in Go 1.27): a failure that
    # wrote no failing input and says only that is not the target's.
    if [ "$(files_in "$corpus")" -eq "$before" ] && grep -q '^    context deadline exceeded$' "$bin/out" &&
      ! grep -q 'Failing input written' "$bin/out"; then
      echo "(the fuzz coordinator's deadline race, no failing input: not counted)"
    else
      failed=1
    fi
  else
    tail -n 3 "$bin/out"
  fi
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
  grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed "s|^func ||; s|^|$(dirname "${f#./}") |"
done)

if [ "$count" -eq 0 ]; then
  echo "no fuzz target matches $filter" >&2
  exit 1
fi
exit $failed
