#!/usr/bin/env bash
# Makes the TLS certificate of wt.local, wt-vclass.local and wt-recorder.local for nginx
# (certs/wt.local/wt.local+2.pem and -key.pem, as mkcert names them) and the recorder's
# PKCS#12 file (websoft/configs/vclass-recorder/certs/recorder.pfx) with the given
# password. Uses mkcert when it is installed (browsers then trust the certificate after
# `mkcert -install`), else openssl (a self-signed certificate browsers warn about).
# Usage: deploy/scripts/make-certs.sh [PFX_PASSWORD]   (default: recpass)
set -euo pipefail
cd "$(dirname "$0")/.."
password=${1:-recpass}
names=(wt.local wt-vclass.local wt-recorder.local)
out=certs/wt.local
pem=$out/wt.local+2.pem
key=$out/wt.local+2-key.pem
mkdir -p "$out" websoft/configs/vclass-recorder/certs
if command -v mkcert >/dev/null 2>&1 && [ -z "${NO_MKCERT:-}" ]; then
  (cd "$out" && mkcert "${names[@]}")
else
  san="DNS:wt.local,DNS:wt-vclass.local,DNS:wt-recorder.local,DNS:vclass-recorder,DNS:localhost,IP:127.0.0.1,IP:::1"
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 \
    -keyout "$key" -out "$pem" -subj "/CN=wt.local" \
    -addext "subjectAltName=$san" -addext "extendedKeyUsage=serverAuth" 2>/dev/null
  echo "made a self-signed certificate with openssl (install mkcert for one browsers trust)"
fi
chmod 644 "$pem" "$key"
openssl pkcs12 -export -inkey "$key" -in "$pem" \
  -out websoft/configs/vclass-recorder/certs/recorder.pfx -passout "pass:$password"
chmod 644 websoft/configs/vclass-recorder/certs/recorder.pfx
echo "nginx: $pem, $key"
echo "recorder: websoft/configs/vclass-recorder/certs/recorder.pfx (password as in its config.json)"
