# syntax=docker/dockerfile:1
# Gatehouse in a container: build with the official Go image, run on distroless.
#
#   docker build -t gatehouse .
#   docker run -p 8080:8080 -v gatehouse-data:/data \
#     -e GATEHOUSE_BASE_URL=https://login.example.com gatehouse
#
# Built with CGO_ENABLED=1: the SQLite driver (github.com/mattn/go-sqlite3)
# compiles SQLite's C source with cgo (gcc is in the Go image), so the binary
# links glibc and the run stage is distroless/base (glibc, same Debian 12 as
# the build stage), not distroless/static. The run stage has no shell and no
# package manager; it runs as uid 65532 (nonroot).

FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=1 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# The same target CI and developers use: templ generate, then go build to bin/gatehouse.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    make build && ./bin/gatehouse help >/dev/null
# The data directory, owned by the user the run stage runs as (no shell there
# to create it). A volume mounted on /data replaces it.
RUN mkdir -p /out/data && chown 65532:65532 /out/data && chmod 0700 /out/data

FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /src/bin/gatehouse /usr/local/bin/gatehouse
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
# Listen on every interface inside the container; keep the data on the volume.
# GATEHOUSE_BASE_URL (https) must be given at run time, and GATEHOUSE_MASTER_KEY
# should be (else master.key is created next to the database).
ENV GATEHOUSE_ADDR=0.0.0.0:8080 GATEHOUSE_DATA=/data/gatehouse
VOLUME ["/data"]
EXPOSE 8080
# SIGTERM stops serve gracefully (20 s for requests in flight).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve"]
