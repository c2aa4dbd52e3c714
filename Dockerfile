# fleetcert as a container: a static binary on distroless, as a non-root
# user, with the store in one volume. Build with the version stamped:
#   docker build -t fleetcert --build-arg VERSION=$(git describe --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) .
# README.md, "Running in production", has the rest.

FROM golang:1.26 AS build
# An image older than go.mod's go line fetches that toolchain (checked
# against Go's checksum database) instead of failing.
ENV GOTOOLCHAIN=auto
WORKDIR /src
# Modules first: they change less often than the code, so this layer is reused.
COPY go.mod go.sum ./
# go.mod replaces mochi by the patched copy there (its FLEETCERT.md).
COPY third_party/ third_party/
RUN go mod download
COPY . .
# The context has no .git (.dockerignore), so Go cannot stamp the commit
# itself: the build arguments are linked into the binary instead.
ARG VERSION=""
ARG COMMIT=""
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.stampedVersion=${VERSION} -X main.stampedCommit=${COMMIT}" \
      -o /out/fleetcert ./cmd/fleetcert \
 && mkdir /out/data

# Static: no libc, no shell; CA certificates and tzdata included; user
# nonroot is 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fleetcert /fleetcert
# The volume's mount point belongs to nonroot, so a new named volume does too.
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot:nonroot
# Set in the environment rather than as flags, so that `docker run -e`
# can change any of them (a flag would win over the variable).
ENV FLEETCERT_DATA_DIR=/data \
    FLEETCERT_API_ADDR=0.0.0.0:8080 \
    FLEETCERT_MQTT_ADDR=0.0.0.0:8883
VOLUME ["/data"]
# 8080: the AWS IoT certificate API, the console, /healthz and /metrics.
# 8883: the MQTT device gateway (mutual TLS).
EXPOSE 8080 8883
# No curl here: the binary asks /healthz itself, at the address serve
# listens on (FLEETCERT_API_ADDR, reached on loopback).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/fleetcert", "wait", "--timeout", "4s"]
ENTRYPOINT ["/fleetcert"]
CMD ["serve"]
