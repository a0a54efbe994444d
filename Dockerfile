# Multi-stage build of Eventra's three binaries into one small runtime image.
# The services differ only in their command: `command-api`, `query-api`, `projector run`.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && cp target/release/command-api target/release/query-api target/release/projector /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /var/lib/eventra eventra \
 && mkdir -p /var/lib/eventra/search && chown -R eventra /var/lib/eventra
COPY --from=build /out/ /usr/local/bin/
USER eventra
WORKDIR /var/lib/eventra
ENV EVENTRA_DATA_DIR=/var/lib/eventra LOG_FORMAT=json
EXPOSE 8080 8081 8082
CMD ["command-api"]
