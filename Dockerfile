# scribe in a container, for IT teams who prefer them. Debian packages whisper.cpp only in
# sid, so both stages use debian:sid-slim with the same packages as scripts/sidroot.
#
#   docker build -t scribe .
#   docker run --rm -p 8443:8443 -v scribe-data:/var/lib/scribe \
#     --device /dev/snd --group-add audio scribe serve
#
# Models are not in the image: mount them at /var/lib/scribe/models or run
# `scribe model pull base.en` once inside the container (sha256-checked).
#
# Audio: scribe captures through PortAudio's ALSA backend, straight from the sound card,
# so the container needs the host's /dev/snd and a group that may open it. /dev/snd keeps
# the host's group id, while `--group-add audio` means the image's audio group (gid 29, as
# on Debian hosts); on a host whose audio gid differs pass the host's number instead:
# --group-add "$(getent group audio | cut -d: -f3)". A
# desktop sound server (PulseAudio/PipeWire) holding the card can block it: on a
# dedicated box there is none. Check inside the container:
#   docker run --rm --device /dev/snd --group-add audio -v scribe-data:/var/lib/scribe scribe devices
#   docker run --rm --device /dev/snd --group-add audio -v scribe-data:/var/lib/scribe scribe doctor
# The data key: on first start scribe creates data.key (mode 0600) in the volume beside the
# database; copy it somewhere safe apart from the backups (README, "Backup and restore"),
# or supply your own with --env-file holding SCRIBE_DATA_KEY=<base64 of 32 random bytes>.

FROM debian:sid-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates golang-go gcc libc6-dev make pkg-config git \
      libwhisper-dev libggml-dev portaudio19-dev libasound2-dev libsqlite3-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=container
RUN GOFLAGS=-buildvcs=false go build -ldflags "-X main.version=${VERSION}" -o /out/scribe ./cmd/scribe

FROM debian:sid-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates libwhisper1 libggml0 libportaudio2 libasound2t64 libsqlite3-0 whisper.cpp-tools \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/scribe --shell /usr/sbin/nologin scribe \
    && mkdir -p /var/lib/scribe/models /etc/scribe && chown -R scribe:scribe /var/lib/scribe
COPY --from=build /out/scribe /usr/local/bin/scribe
USER scribe
ENV SCRIBE_DATA_DIR=/var/lib/scribe SCRIBE_LISTEN=0.0.0.0:8443
EXPOSE 8443
VOLUME ["/var/lib/scribe"]
HEALTHCHECK CMD ["scribe", "version"]
ENTRYPOINT ["scribe"]
CMD ["serve"]
