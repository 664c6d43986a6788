# dllm-farm gateway image (apps/gateway). Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t ghcr.io/dllm-farm/gateway:0.1.0 .
# Network during the build: the npm registry only (onnxruntime-node's CUDA download is skipped).

# --- build: all dependencies (TypeScript, tsc-alias), compile to dist/ ---
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
# onnxruntime-node's install step would download CUDA provider libraries; the gateway needs none.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY libs ./libs
COPY apps ./apps
RUN npm run build

# --- deps: production dependencies only ---
FROM node:20.20.2-bookworm-slim AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime: node + production node_modules + dist, as a non-root user ---
FROM node:20.20.2-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# Numeric uid so Kubernetes can verify runAsNonRoot; no home, no shell login.
RUN groupadd --gid 10001 dllm && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin dllm \
    && mkdir -p /var/lib/dllm/storage && chown 10001:10001 /var/lib/dllm/storage
USER 10001:10001
ENV GATEWAY_PORT=8080 STORAGE_DIR=/var/lib/dllm/storage
EXPOSE 8080
CMD ["node", "dist/apps/gateway/src/main.js"]
