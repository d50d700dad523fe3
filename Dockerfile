# Lockstep orchestrator image: dashboard, JSON API, engine and embedded SQLite.
# The host agent (`lockstep-agent`) runs on the Windows servers themselves and is not in this image.
#
#   docker build -t lockstep .
#   docker run -p 8443:8443 -v lockstep-data:/data \
#     -v /etc/lockstep/tls:/tls:ro lockstep serve --listen 0.0.0.0:8443 \
#     --tls-cert /tls/cert.pem --tls-key /tls/key.pem
#
# Plain HTTP is served only on loopback, so a container listening on 0.0.0.0 needs a certificate.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin lockstep && strip target/release/lockstep

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin lockstep \
 && mkdir -p /data && chown lockstep:lockstep /data
COPY --from=build /src/target/release/lockstep /usr/local/bin/lockstep
USER lockstep
WORKDIR /data
VOLUME ["/data"]
ENV LOCKSTEP_DATA_DIR=/data
EXPOSE 8443
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD curl -fsk https://127.0.0.1:8443/healthz || exit 1
ENTRYPOINT ["lockstep"]
CMD ["serve", "--listen", "0.0.0.0:8443"]
