# syntax=docker/dockerfile:1
# The Portcullis container image: a static-enough release build on a distroless base with no
# shell, running as the unprivileged user 65532. Build from the repository root:
#
#   docker build -t portcullis:0.1.0 --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#
# The Rust version must match rust-toolchain.toml (a test checks it). See docs/kubernetes.md.

ARG RUST_VERSION=1.95.0

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# Only the workspace (see .dockerignore). rust-toolchain.toml is left out on purpose: the image's
# toolchain is the pinned one, and the file's extra components (rustfmt, clippy) are not needed.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p portcullis-cli \
    && install -D -m 0755 target/release/portcullis /out/portcullis

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="portcullis" \
      org.opencontainers.image.description="Security gateway for LLM and agent traffic: OpenAI-compatible gateway and MCP proxy with detectors and Rego policy" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/portcullis" \
      org.opencontainers.image.documentation="https://example.invalid/portcullis/docs/kubernetes.md"
COPY --from=build /out/portcullis /usr/local/bin/portcullis
# distroless's `nonroot` user; Kubernetes' runAsNonRoot needs the numeric form.
USER 65532:65532
# The SQLite store's default file (portcullis.db) is created in the working directory: the
# user's home is writable. In Kubernetes the chart mounts an emptyDir and sets workingDir.
WORKDIR /home/nonroot
# 8080: the API, /healthz, /readyz, /metrics; 9090: the admin API and console (admin.listen).
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve", "--config", "/etc/portcullis/portcullis.yaml"]
