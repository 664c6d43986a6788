# dllm-farm worker image, CUDA: onnxruntime-node with its CUDA execution provider.
#   docker build -f deploy/docker/worker-cuda.Dockerfile -t ghcr.io/dllm-farm/worker-cuda:0.1.0 .
# NETWORK NEEDED: besides the npm registry, the deps stage downloads the CUDA provider libraries
# (libonnxruntime_providers_cuda.so, _shared.so, _tensorrt.so) from the NuGet package
# Microsoft.ML.OnnxRuntime.Gpu.Linux (same version as onnxruntime-node) on https://api.nuget.org:
# that is what onnxruntime-node's install script does for ONNXRUNTIME_NODE_INSTALL=cuda12. Behind a
# proxy, pass GLOBAL_AGENT_HTTPS_PROXY as a build arg (the script honours it). linux/amd64 only.
# Needs on the node: NVIDIA driver >= 570 (CUDA 12.8) and the NVIDIA container toolkit / device plugin.

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

# --- deps: production dependencies + the CUDA provider of onnxruntime-node ---
FROM node:20.20.2-bookworm-slim AS deps
ARG GLOBAL_AGENT_HTTPS_PROXY
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# package.json's allowScripts denies onnxruntime-node's install script and the variable skips it on an npm
# without allowScripts, so npm ci installs the CPU build. Running the
# install script explicitly makes the download independent of npm's lifecycle-script policy, and
# the test -f fails the build if the provider did not arrive.
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --omit=dev --no-audit --no-fund \
    && ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js \
    && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so \
    && npm cache clean --force

# --- node binary to copy into the CUDA base ---
FROM node:20.20.2-bookworm-slim AS node

# --- runtime: CUDA 12 + cuDNN 9 runtime libraries (what onnxruntime 1.30's CUDA provider links) ---
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS runtime
ARG MODELS_SRC=deploy/docker/no-models
ENV NODE_ENV=production
COPY --from=node /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY ${MODELS_SRC} /models
RUN groupadd --gid 10001 dllm && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin dllm \
    && mkdir -p /var/lib/dllm/storage && chown 10001:10001 /var/lib/dllm/storage
USER 10001:10001
ENV WORKER_PORT=9090 WORKER_EXECUTION_PROVIDER=cuda MODELS=tiny-dllm=/models/tiny-dllm STORAGE_DIR=/var/lib/dllm/storage
EXPOSE 9090
CMD ["node", "dist/apps/worker/src/main.js"]
