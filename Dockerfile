# recbot: build with the same toolchain as CI, run on a small Debian with CA certificates.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin recbot

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin recbot \
 && mkdir -p /data /config \
 && chown recbot:recbot /data
COPY --from=build /src/target/release/recbot /usr/local/bin/recbot
USER recbot
# State database, recordings and chat logs.
VOLUME ["/data"]
ENV RECBOT_STORAGE__DATA_DIR=/data
# Mount the config read-only: -v ./recbot.toml:/config/recbot.toml:ro
ENTRYPOINT ["recbot"]
CMD ["run", "--config", "/config/recbot.toml"]
