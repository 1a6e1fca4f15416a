#!/usr/bin/env bash
# Creates (once) a virtualenv with the official client packages used by the server tests and
# prints its python's path. Location: $ATELIER_PY_VENV or target/py-clients.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${ATELIER_PY_VENV:-$here/../../target/py-clients}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import openai, replicate, standardwebhooks, moto.server" 2>/dev/null; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt" >&2
fi
echo "$venv/bin/python"
