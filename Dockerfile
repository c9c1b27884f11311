# syntax=docker/dockerfile:1.7
# The Mosaic container image: one static-ish binary on distroless/cc.
#
#   docker build -t mosaic .
#   docker run -p 8080:8080 -v mosaic-data:/data mosaic
#
# Reproducible build (same source + same base images -> same image digest):
#   docker buildx build \
#     --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" \
#     --output type=docker,name=mosaic:"$(git rev-parse --short HEAD)",rewrite-timestamp=true .
# Pin the base images by digest for that (docs/operations.md#container-image):
#   --build-arg RUST_IMAGE=rust:1-slim-bookworm@sha256:… \
#   --build-arg RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:…
ARG RUST_IMAGE=rust:1-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
ARG SOURCE_DATE_EPOCH=0
# No build paths in the binary (RUSTFLAGS): the same bytes from any checkout.
ENV SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    RUSTFLAGS="--remap-path-prefix=/src=. --remap-path-prefix=/usr/local/cargo=cargo"
WORKDIR /src
COPY . .
# The registry and the target directory are cache mounts: a rebuild after a
# source change compiles Mosaic's crates only. --locked: Cargo.lock decides.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release -p mosaic --locked \
 && install -D -m 0755 target/release/mosaic /out/usr/local/bin/mosaic \
 && mkdir -p /out/data

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="Mosaic" \
      org.opencontainers.image.description="A multi-tenant, metadata-driven application platform" \
      org.opencontainers.image.source="https://github.com/mosaic-platform/mosaic"
COPY --from=build /out/usr/local/bin/mosaic /usr/local/bin/mosaic
# The embedded default keeps its databases in /data (uid 65532: nonroot).
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV MOSAIC_DATA_DIR=/data \
    MOSAIC_LISTEN=0.0.0.0:8080 \
    MOSAIC_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
# The image has no shell and no curl: the binary probes itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/mosaic", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/mosaic"]
CMD ["serve"]
