#!/usr/bin/env bash
# Makes the log folders the containers write to (as the non-root users of the images:
# vclass-media 65532, vclass-recorder 10001) in the seed's layout, websoft/Logs/NAME.
# Usage: deploy/scripts/prepare-dirs.sh   (as root it sets owners; else it opens the modes)
set -euo pipefail
cd "$(dirname "$0")/.."
for d in vclass-media-1 vclass-media-2 vclass-recorder; do
  mkdir -p "websoft/Logs/$d"
done
if [ "$(id -u)" -eq 0 ]; then
  chown 65532 websoft/Logs/vclass-media-1 websoft/Logs/vclass-media-2
  chown 10001 websoft/Logs/vclass-recorder
else
  chmod 0777 websoft/Logs/vclass-media-1 websoft/Logs/vclass-media-2 websoft/Logs/vclass-recorder
fi
echo "log folders ready under websoft/Logs"
