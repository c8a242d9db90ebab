# scribe in a container, for IT teams who prefer them. Debian packages whisper.cpp only in
# sid, so both stages use debian:sid-slim with the same packages as scripts/sidroot.
#
#   docker build -t scribe .
#   docker run --rm -p 8443:8443 -v scribe-data:/var/lib/scribe \
#     --device /dev/snd --group-add audio scribe serve
#
# Models are not in the image: mount them at /var/lib/scribe/models or run
# `scribe model pull base.en` once inside the container (sha256-checked).

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
