#!/usr/bin/env bash
# The same API from the shell with curl:
#   DLLM_API_KEY=sk-... examples/curl.sh
# Environment: DLLM_API_KEY (required), DLLM_BASE_URL (default http://127.0.0.1:8080/v1),
# DLLM_MODEL (default tiny-dllm). Start a gateway and a worker first (README).
set -euo pipefail
: "${DLLM_API_KEY:?set DLLM_API_KEY to an API key the gateway accepts}"
BASE="${DLLM_BASE_URL:-http://127.0.0.1:8080/v1}"
MODEL="${DLLM_MODEL:-tiny-dllm}"
auth=(-H "Authorization: Bearer ${DLLM_API_KEY}" -H 'Content-Type: application/json')

echo '# models'
curl -fsS "${auth[@]}" "$BASE/models"
echo

echo '# completion (dLLM options as extra body fields)'
curl -fsS "${auth[@]}" "$BASE/completions" \
  -d "{\"model\": \"$MODEL\", \"prompt\": \"Q: 347+589=?\\nA:\", \"max_tokens\": 96, \"temperature\": 0, \"policy\": \"fast-dllm-v2\", \"threshold\": 0.9}"
echo

echo '# streaming (server-sent events, one chunk per committed block)'
curl -fsSN "${auth[@]}" "$BASE/completions" \
  -d "{\"model\": \"$MODEL\", \"prompt\": \"Q: 12+34=?\\nA:\", \"max_tokens\": 64, \"temperature\": 0, \"stream\": true}"
