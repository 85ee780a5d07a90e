#!/usr/bin/env bash
# Installs the third-party MCP peers the integration tests run against, pinned, into .peers/
# (beside the project, git-ignored). Idempotent: a peer already at its pinned version is kept.
# Only package registries are used: npm for Node 22 and the Node peers, PyPI for the Python SDK.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS="${SWITCHYARD_PEERS_DIR:-$PWD/.peers}"
NODE_VERSION=22.23.3
# The 2026-capable prerelease: it runs `--requirements 2025-11-25` and `2026-07-28`.
CONFORMANCE_VERSION=0.2.0-alpha.12
EVERYTHING_VERSION=2026.8.31
PY_MCP_VERSION=2.3.0
HYPERCORN_VERSION=0.17.3

mkdir -p "$PEERS/node"
stamp="$PEERS/node/.stamp"
want="node@$NODE_VERSION conformance@$CONFORMANCE_VERSION everything@$EVERYTHING_VERSION"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "install-peers: npm packages ($want)"
  # Debian's Node is 20; the conformance suite needs 22, which ships as an npm package.
  npm install --prefix "$PEERS/node" --no-audit --no-fund --loglevel=error \
    "node@$NODE_VERSION" \
    "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
    "@modelcontextprotocol/server-everything@$EVERYTHING_VERSION"
  echo "$want" > "$stamp"
fi
"$PEERS/node/node_modules/.bin/node" --version >/dev/null

if [ "$("$PEERS/venv/bin/python" -c 'import mcp, importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null)" != "$PY_MCP_VERSION" ]; then
  echo "install-peers: python venv with mcp==$PY_MCP_VERSION"
  python3 -m venv "$PEERS/venv"
  "$PEERS/venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$PY_MCP_VERSION"
fi
# hypercorn: the Python SDK server under an ASGI server that speaks cleartext HTTP/2 too.
if [ "$("$PEERS/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("hypercorn"))' 2>/dev/null)" != "$HYPERCORN_VERSION" ]; then
  echo "install-peers: hypercorn==$HYPERCORN_VERSION into the python venv"
  "$PEERS/venv/bin/pip" install --quiet --disable-pip-version-check "hypercorn==$HYPERCORN_VERSION"
fi
echo "install-peers: ok ($PEERS)"
