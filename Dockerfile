# talos-gate: multi-stage image on Node 24 LTS, runs as a non-root user, data_dir on a volume.
#   docker build -t talos-gate .
#   docker run -p 8443:8443 -v talos-gate-data:/var/lib/talos-gate \
#     -v /etc/talos-gate:/etc/talos-gate:ro talos-gate
# The gate listens on every address in the container, so config.yaml must set public_url (the URL
# nodes and browsers reach it at); the gate refuses to start without it.

# build: compiles better-sqlite3 and the TypeScript, then drops the development dependencies
FROM node:24-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build && npm prune --omit=dev

# run: only what the gate needs (no compiler, no sources, no tests)
FROM node:24-bookworm-slim
RUN useradd --system --uid 10001 --home /var/lib/talos-gate talos-gate \
 && mkdir -p /var/lib/talos-gate && chown talos-gate /var/lib/talos-gate && chmod 0700 /var/lib/talos-gate
WORKDIR /opt/talos-gate
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /src/migrations ./migrations
COPY --from=build /src/templates ./templates
COPY --from=build /src/config.example.yaml ./
USER talos-gate
ENV TALOS_GATE_DATA_DIR=/var/lib/talos-gate TALOS_GATE_LISTEN=0.0.0.0:8443 NODE_ENV=production
VOLUME ["/var/lib/talos-gate"]
EXPOSE 8443
# /healthz on the listen address and TLS mode of the same config and environment as serve
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["node", "bin/talos-gate.cjs", "healthcheck", "--config", "/etc/talos-gate/config.yaml"]
# bin/talos-gate.cjs, not dist/cli/main.js: it sizes libuv's thread pool to the cores first
ENTRYPOINT ["node", "bin/talos-gate.cjs"]
CMD ["serve", "--config", "/etc/talos-gate/config.yaml"]
