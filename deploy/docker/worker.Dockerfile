# dllm-farm worker image, CPU (apps/worker + onnxruntime-node's bundled CPU provider).
#   docker build -f deploy/docker/worker.Dockerfile -t ghcr.io/dllm-farm/worker:0.1.0 .
# Models: mounted at /models by default (the image holds only a README there); bake the
# repository's models/ instead with
#   docker build -f deploy/docker/worker.Dockerfile --build-arg MODELS_SRC=models -t ghcr.io/dllm-farm/worker:0.1.0-models .
# Network during the build: the npm registry only.

# --- build: all dependencies, compile to dist/ ---
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY libs ./libs
COPY apps ./apps
RUN npm run build

# --- deps: production dependencies only; onnxruntime-node's CPU binaries ship inside the package ---
FROM node:20.20.2-bookworm-slim AS deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime ---
FROM node:20.20.2-bookworm-slim AS runtime
ARG MODELS_SRC=deploy/docker/no-models
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY ${MODELS_SRC} /models
RUN groupadd --gid 10001 dllm && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin dllm \
    && mkdir -p /var/lib/dllm/storage && chown 10001:10001 /var/lib/dllm/storage
USER 10001:10001
ENV WORKER_PORT=9090 WORKER_EXECUTION_PROVIDER=cpu MODELS=tiny-dllm=/models/tiny-dllm STORAGE_DIR=/var/lib/dllm/storage
EXPOSE 9090
CMD ["node", "dist/apps/worker/src/main.js"]
