# Images of vclass-media and vclass-recorder, built from the repository root:
#   docker build --target vclass-media    --build-arg VERSION=1.0.0 -t vclass/vclass-media:1.0.0 .
#   docker build --target vclass-recorder --build-arg VERSION=1.0.0 -t vclass/vclass-recorder:1.0.0 .
# The binaries are static (no cgo) and reproducible: -trimpath, no VCS stamp, the version
# from VERSION only.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
RUN go build -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/vclass-media ./cmd/vclass-media \
 && go build -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/vclass-recorder ./cmd/vclass-recorder

# vclass-media: the static binary alone, as a non-root user. Mounts of the existing cluster:
# the config at /WebsoftServer/mediasoup_config.json, logs at /WebsoftServer/Logs.
FROM gcr.io/distroless/static-debian12:nonroot AS vclass-media
ARG VERSION=dev
LABEL org.opencontainers.image.title="vclass-media" org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/vclass-media /usr/local/bin/vclass-media
ENV VCLASS_MEDIA_CONFIG=/WebsoftServer/mediasoup_config.json \
    VCLASS_LOG_DIR=/WebsoftServer/Logs \
    VCLASS_HTTP_ADDR=:8011
WORKDIR /WebsoftServer
USER nonroot
EXPOSE 8011 20000-20009/udp 20000-20009/tcp
HEALTHCHECK --interval=10s --timeout=4s --start-period=5s --retries=3 CMD ["/usr/local/bin/vclass-media", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/vclass-media"]

# vclass-recorder: with ffmpeg (to compose class.mp4), as a non-root user. Mounts: the config
# at /Websoft.Recording/config/config.json, the certificate at
# /Websoft.Recording/certs/recorder.pfx, logs at /Websoft.Recording/logs, recordings at
# /Websoft.Recording/records.
FROM debian:bookworm-slim AS vclass-recorder
ARG VERSION=dev
LABEL org.opencontainers.image.title="vclass-recorder" org.opencontainers.image.version="${VERSION}"
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /Websoft.Recording recorder \
 && mkdir -p /Websoft.Recording/config /Websoft.Recording/certs /Websoft.Recording/logs /Websoft.Recording/records \
 && chown -R recorder /Websoft.Recording/logs /Websoft.Recording/records
COPY --from=build /out/vclass-recorder /usr/local/bin/vclass-recorder
ENV VCLASS_RECORDER_CONFIG=/Websoft.Recording/config/config.json
WORKDIR /Websoft.Recording
USER recorder
EXPOSE 8443
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=4s --start-period=5s --retries=3 CMD ["/usr/local/bin/vclass-recorder", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/vclass-recorder"]
