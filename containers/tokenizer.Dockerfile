# One small image with the `tokenizer` binary, used for every role:
#   tokenizer serve         (the tokenizer app; fly.toml)
#   tokenizer sideproxy     (the sidecar container; cli-config.json)
#   sideproxy-transparent   (the sidecar in transparent mode, cli-config.transparent.json:
#                            loads the firewall with nft, then serves unprivileged)
# Build from the repository root:
#   docker build -f containers/tokenizer.Dockerfile -t tokenizer .

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
RUN cargo build --release --locked --bin tokenizer \
 && strip target/release/tokenizer

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates nftables \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/sideproxy
COPY --from=build /src/target/release/tokenizer /usr/local/bin/tokenizer
COPY containers/sideproxy/transparent.sh /usr/local/bin/sideproxy-transparent
# The sidecar keeps its CA here (CA_DIR); a volume keeps it across restarts.
ENV CA_DIR=/var/lib/sideproxy
# The defaults Go's image bakes in (its `serve -use-flysrc=true` and the fly-proxy
# headers its build filters), so any fly.toml gets them; override in [env] if needed.
# DEFAULT_FILTERED_HEADERS adds to FILTERED_HEADERS, as Go's baked list does.
ENV USE_FLYSRC=true \
    DEFAULT_FILTERED_HEADERS=Fly-Client-Ip,Fly-Forwarded-Port,Fly-Forwarded-Proto,Fly-Forwarded-Ssl,Fly-Region,Fly-Request-Id,Fly-Traceparent,Fly-Tracestate,Fly-Src,Fly-Src-Signature
ENTRYPOINT ["/usr/local/bin/tokenizer"]
CMD ["serve"]
