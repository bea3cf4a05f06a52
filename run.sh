#!/usr/bin/env bash
# Set up (once) and start the command center. Arguments go to app.py, e.g. ./run.sh --port 8060
set -euo pipefail
cd "$(dirname "$0")"
source tools/venv.sh
ensure_venv requirements.txt
exec .venv/bin/python app.py "$@"
