# Shared by the measuring scripts (sourced, not run): the mock upstream's configuration and
# waiting for a server to announce its address.

# stdio_mock_servers LG ERA POOL: the `[[servers]]` entry for the mock MCP server over stdio
# (tools unprefixed), spoken to in ERA, POOL processes.
stdio_mock_servers() {
  cat <<TOML
[[servers]]
name = "mock"
command = "$1"
args = ["mock-server", "--stdio"]
prefix = ""
era = "$2"
pool = $3
TOML
}

# wait_for_url LOG [SECONDS]: print the first http:// address LOG shows within SECONDS
# (default 5); print nothing if none does.
wait_for_url() {
  local url="" tries=$(( ${2:-5} * 20 ))
  for _ in $(seq "$tries"); do
    url=$(grep -o 'http://[^ ]*' "$1" 2>/dev/null | head -1 || true)
    [ -n "$url" ] && break
    sleep 0.05
  done
  echo "$url"
}
