# Tollgate container: builds on Debian 12 with Debian's packages only, runs as an unprivileged user.
#   docker build -t tollgate . && docker run -p 4000:4000 -e OPENAI_API_KEY tollgate
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake pkgconf libh2o-evloop-dev libcurl4-openssl-dev libjansson-dev \
      libyaml-dev libssl-dev libsqlite3-dev libpq-dev libhiredis-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOLLGATE_TESTS=OFF \
    && cmake --build build -j"$(nproc)"

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libh2o-evloop0.13 libcurl4 libjansson4 libyaml-0-2 libssl3 libsqlite3-0 libpq5 libhiredis0.14 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /app tollgate \
    && mkdir -p /app/data && chown tollgate: /app/data
WORKDIR /app
COPY --from=build /src/build/tollgate /usr/local/bin/tollgate
COPY config /app/config
USER tollgate
ENV PORT=4000
# SQLite store (when DATABASE_URL is not set); mount a volume here to keep keys and spend
ENV TOLLGATE_DATA_DIR=/app/data
EXPOSE 4000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=2s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/$PORT"]
CMD ["tollgate", "--config", "/app/config/tollgate.yaml"]
