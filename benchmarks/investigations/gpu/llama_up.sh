# Sourced by points.sh and sweep.sh. start_llama LOG: run the command in the array `server` (logged to
# $cmdlog, output to LOG) in the background as $spid and wait until $port answers /health; the script
# exits if the server dies first.
start_llama() {
  echo "${server[*]}" >>"$cmdlog"
  "${server[@]}" >"$1" 2>&1 &
  spid=$!
  for _ in $(seq 600); do
    curl -sf "127.0.0.1:$port/health" >/dev/null && return 0
    kill -0 "$spid" 2>/dev/null || { echo "llama-server died"; tail -20 "$1"; exit 1; }
    sleep 0.2
  done
}
