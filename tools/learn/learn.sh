#!/usr/bin/env bash
# One command for the learner: picks a python3 that has torch (PYTHON, else /usr/bin/python3, else python3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
for py in "${PYTHON:-}" /usr/bin/python3 python3; do
  if [ -n "$py" ] && "$py" -c 'import torch' >/dev/null 2>&1; then exec "$py" "$here/learn.py" "$@"; fi
done
echo "learn.sh: no python3 with torch found (Debian: apt-get install python3-torch; or set PYTHON)" >&2
exit 2
