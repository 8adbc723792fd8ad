#!/usr/bin/env bash
# Builds, without any container registry, the images the Dockerfile and
# deploy/docker-compose.yml start from, under the names they use, from what
# an air-gapped site can mirror: Debian's packages and the Go module proxy.
#
#   debian:bookworm-slim, debian:bookworm   Debian bookworm by debootstrap (minbase), imported
#   golang:$GO_VERSION-bookworm             that, with the Go toolchain from the Go module proxy
#   gcr.io/distroless/static-debian12:nonroot
#                                           a static base: users root and nonroot (65532), CA
#                                           certificates, time zones; no shell, no package manager
#   nginx:1.27, redis:7                     Debian's nginx and redis-server, run as the official
#                                           images run them
#
# Usage: deploy/scripts/offline-base-images.sh   (as root, with a Docker engine running)
# DEBIAN_MIRROR (default: the machine's own apt source) and GOPROXY (default: go env GOPROXY)
# name where packages and the toolchain come from; the certificate authorities in LOCAL_CAS
# (default: this machine's own, /usr/local/share/ca-certificates) are trusted in the images. An image already there is kept: remove it
# (docker rmi) to build it again. The builds use the host's network (--network host): the
# engine may run with no NAT for its containers.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DOCKER_BUILDKIT=0 # the classic builder: BuildKit would fetch its front end from a registry
GO_VERSION=${GO_VERSION:-$(sed -n 's/^ARG GO_VERSION=//p' Dockerfile)}
if [ -z "${DEBIAN_MIRROR:-}" ]; then
  DEBIAN_MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

have() { docker image inspect "$1" > /dev/null 2>&1; }
say() { echo "offline-base-images: $*"; }

# build TAG: builds the Dockerfile on stdin, context $work/ctx, as TAG.
build() {
  docker build --network host -q -t "$1" -f - "$work/ctx" > "$work/build.log" 2>&1 || { tail -20 "$work/build.log" >&2; exit 1; }
  say "built $1 ($(docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'))"
}

if ! have debian:bookworm-slim; then
  command -v debootstrap > /dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
  say "debootstrap bookworm from $DEBIAN_MIRROR"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$work/rootfs" "$DEBIAN_MIRROR" > "$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # As slim as Debian's own slim image: no documentation, manuals, locales or package lists,
  # and apt told to keep it so.
  rm -rf "$work/rootfs"/usr/share/{doc,man,info,locale}/* "$work/rootfs"/var/lib/apt/lists/* \
    "$work/rootfs"/var/cache/apt/*.bin "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/log/*
  cat > "$work/rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' > "$work/rootfs/etc/apt/apt.conf.d/docker-slim"
  echo 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };' \
    > "$work/rootfs/etc/apt/apt.conf.d/docker-clean"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$DEBIAN_MIRROR" > "$work/rootfs/etc/apt/sources.list.d/debian.sources"
  rm -f "$work/rootfs/etc/apt/sources.list" "$work/rootfs/etc/hostname" "$work/rootfs/etc/resolv.conf"
  # The site's own certificate authorities (a TLS-inspecting proxy's, say: Debian keeps them
  # in /usr/local/share/ca-certificates) are trusted in the images as on this machine.
  if compgen -G "${LOCAL_CAS:-/usr/local/share/ca-certificates}/*.crt" > /dev/null; then
    cp "${LOCAL_CAS:-/usr/local/share/ca-certificates}"/*.crt "$work/rootfs/usr/local/share/ca-certificates/"
    chroot "$work/rootfs" update-ca-certificates > /dev/null
  fi
  tar -C "$work/rootfs" --numeric-owner -c . |
    docker import -c 'CMD ["bash"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      - debian:bookworm-slim > /dev/null
  rm -rf "$work/rootfs"
  docker tag debian:bookworm-slim debian:bookworm
  say "imported debian:bookworm-slim ($(docker image inspect -f '{{.Size}}' debian:bookworm-slim | awk '{printf "%.0f MB", $1/1e6}'))"
fi

mkdir -p "$work/ctx"

if ! have "golang:$GO_VERSION-bookworm"; then
  # The toolchain as the go command fetches one (GOTOOLCHAIN): a module of the proxy.
  mod=golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64
  dir=$(GOPROXY=${GOPROXY:-$(go env GOPROXY)} go mod download -json "$mod" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir/bin" ] || { echo "no Go toolchain in $mod" >&2; exit 1; }
  cp -r "$dir" "$work/ctx/go"
  # A module zip keeps no modes: the programs made executable, as the go command does.
  chmod -R u+w,a+rX "$work/ctx/go"
  chmod a+x "$work/ctx/go"/bin/* "$work/ctx/go"/pkg/tool/*/*
  build "golang:$GO_VERSION-bookworm" <<'EOF'
FROM debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates git gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY go /usr/local/go
ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN mkdir -p /go/bin /go/src && go version
WORKDIR /go
EOF
  rm -rf "$work/ctx/go"
fi

if ! have gcr.io/distroless/static-debian12:nonroot; then
  build gcr.io/distroless/static-debian12:nonroot <<'EOF'
FROM debian:bookworm-slim AS files
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && mkdir -p /out/etc/ssl/certs /out/usr/share /out/tmp /out/home/nonroot \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \
 && cp -r /usr/share/zoneinfo /out/usr/share/ \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /out/etc/passwd \
 && printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > /out/etc/group \
 && chmod 1777 /out/tmp && chown 65532:65532 /out/home/nonroot
FROM scratch
COPY --from=files /out/ /
USER 65532:65532
WORKDIR /home/nonroot
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
EOF
fi

if ! have nginx:1.27; then
  # Debian's nginx (1.22 in bookworm), run as the official image runs it: in the foreground,
  # the configuration in /etc/nginx.
  build nginx:1.27 <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 80 443
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
EOF
fi

if ! have redis:7; then
  # Debian's redis-server (7.0 in bookworm), as the official image: data in /data, the
  # server's own user.
  build redis:7 <<'EOF'
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* && mkdir /data && chown redis:redis /data
WORKDIR /data
VOLUME /data
USER redis
EXPOSE 6379
# As the official image, a server started with no configuration file takes clients from
# other containers (protected mode would refuse them: there is no password).
ENTRYPOINT ["sh", "-c", "if [ \"$1\" = redis-server ]; then shift; exec redis-server --protected-mode no \"$@\"; fi; exec \"$@\"", "--"]
CMD ["redis-server"]
EOF
fi
say "done"
