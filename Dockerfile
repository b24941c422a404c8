# Builds the poller, api and migrator binaries into one image on Debian slim.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin poller --bin api --bin migrator

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/poller /src/target/release/api /src/target/release/migrator /usr/local/bin/
# The binaries need no privileges.
USER 65534:65534
CMD ["api"]
