# Lockstep orchestrator image: dashboard, JSON API, engine and embedded SQLite.
# The host agent (`lockstep-agent`) runs on the Windows servers themselves and is not in this image.
#
#   docker build -t lockstep .
#   docker run -p 8443:8443 -v lockstep-data:/data lockstep        # self-signed certificate in /data
#   docker run -p 8443:8443 -v lockstep-data:/data -v /etc/lockstep:/etc/lockstep:ro \
#     -e LOCKSTEP_SQL_PASSWORD lockstep serve --listen 0.0.0.0:8443 \
#     --config /etc/lockstep/lockstep.toml --tls-cert /etc/lockstep/cert.pem --tls-key /etc/lockstep/key.pem
#
# Plain HTTP is served only on loopback, so a container listening on 0.0.0.0 serves HTTPS: with the
# site's certificate, or by default a self-signed one kept in the data volume.
# The base images are arguments so a site (or scripts/docker-smoke) can build from its own mirror.

ARG BUILD_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin lockstep && strip target/release/lockstep

FROM ${RUNTIME_IMAGE}
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
CMD ["serve", "--listen", "0.0.0.0:8443", "--tls-self-signed"]
