# flowc in one image: `flowc worker`, `flowc gateway`, `flowc model-server`, `flowc apply`, …
#   docker build -t flowc:0.1.0 .
# Build stage: RocksDB's bindgen needs libclang, the OIP protobufs need protoc.
FROM rust:1.88-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin flowc

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 flowc
COPY --from=build /src/target/release/flowc /usr/local/bin/flowc
USER 10001
ENTRYPOINT ["/usr/local/bin/flowc"]
