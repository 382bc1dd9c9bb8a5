#!/usr/bin/env bash
# Makes a PNG of the web inspector with headless Chromium: starts a throwaway
# local app and `hooktunnel listen` (embedded relay, temp home), sends a few
# signed sample webhooks through the tunnel, opens the newest one and shoots.
#
#   scripts/screenshot.sh [OUT.png]      (default docs/web-inspector.png)
#
# Needs: cargo, python3, curl, chromium (Debian: apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/web-inspector.png}
mkdir -p "$(dirname "$out")"
case $out in /*) abs=$out ;; *) abs=$PWD/$out ;; esac

cargo build --quiet --bin hooktunnel
bin=$PWD/target/debug/hooktunnel
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# A local app that answers every request with a small JSON body.
python3 - "$work/app.port" <<'PY' &
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def handle_one(self):
        n = int(self.headers.get("content-length") or 0)
        self.rfile.read(n)
        body = json.dumps({"ok": True, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_DELETE = handle_one
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
PY
pids+=($!)
for _ in $(seq 50); do [ -s "$work/app.port" ] && break; sleep 0.1; done
app_port=$(cat "$work/app.port")

export HOOKTUNNEL_HOME=$work/home NO_COLOR=1
"$bin" listen "$app_port" --json --no-tui --embedded-listen 127.0.0.1:0 \
  --web-addr 127.0.0.1:0 --verify github:screenshot-secret >"$work/listen.out" 2>"$work/listen.err" &
pids+=($!)
for _ in $(seq 100); do grep -q 'web inspector' "$work/listen.err" 2>/dev/null && break; sleep 0.1; done
web=$(grep -o 'http://127\.0\.0\.1:[0-9]*/' "$work/listen.err" | head -1)
public=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["public_url"])' <"$work/listen.out")
relay=${public%/t/*}

send() { HOOKTUNNEL_RELAY=$relay "$bin" trigger "$@" --tunnel >/dev/null; }
send github.push --sign github:screenshot-secret
send stripe.payment_intent.succeeded || true
send shopify.orders.create || true
send slack.command || true
curl -s -o /dev/null -X POST -H 'content-type: application/x-www-form-urlencoded' \
  --data 'From=%2B15550100&Body=hello+there' "$public/sms/incoming"
send github.push --sign github:screenshot-secret
sleep 0.5

timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --hide-scrollbars --window-size=1400,820 \
  --virtual-time-budget=4000 --screenshot="$abs" "${web}#latest" 2>"$work/chromium.log" \
  || { tail -20 "$work/chromium.log" >&2; exit 1; }
echo "wrote $out"
