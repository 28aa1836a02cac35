#!/usr/bin/env bash
# Requests/s and latency (p50, p99) of `lenet-gpu serve` at 1 and 8 concurrent clients,
# measured with wrk (Debian's package) over loopback: POST /api/classify with a test digit
# as pixel JSON and as a PNG, and GET /api/test/0.
# Usage: bench/serve-load.sh MODEL [SECONDS per run, default 10]
# Needs MNIST (LENET_DATA or data/mnist) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
model="$1"
secs="${2:-10}"
bin=target/release/lenet-gpu
work="$(mktemp -d)"
"$bin" serve --model "$model" --port 0 >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q 'http://' "$work/serve.log" && break; sleep 0.1; done
url="$(grep -o 'http://[^ ]*' "$work/serve.log" | head -1)"
url="${url%/}"
curl -s "$url/api/test/0" | python3 -c 'import json,sys; print(json.dumps({"pixels": json.load(sys.stdin)["input"]}))' >"$work/pixels.json"
python3 - "$work/pixels.json" "$work/digit.png" <<'PY'
import json, sys, struct, zlib
px = json.load(open(sys.argv[1]))["pixels"]
# A 112x112 grey PNG, dark ink on white, as a photo of the digit would be.
rows = b"".join(b"\0" + bytes(255 - px[(y // 4) * 28 + x // 4] for x in range(112)) for y in range(112))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 112, 112, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(sys.argv[2], "wb").write(png)
PY
echo "lenet-gpu serve: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(date -u +%Y-%m-%d), ${secs}s per run"
for clients in 1 8; do
    threads=$(( clients < $(nproc) ? clients : $(nproc) ))
    for what in pixels png test; do
        case $what in
            pixels) args=(-s bench/serve_post.lua "$url/api/classify"); export BODY="$work/pixels.json" CTYPE=application/json ;;
            png) args=(-s bench/serve_post.lua "$url/api/classify"); export BODY="$work/digit.png" CTYPE=image/png ;;
            test) args=("$url/api/test/0") ;;
        esac
        out="$(wrk -t"$threads" -c"$clients" -d"${secs}s" --latency "${args[@]}")"
        rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
        p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
        p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
        errors="$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)"
        printf '%-2s clients  %-7s %9s req/s  p50 %8s  p99 %8s  %s\n' "$clients" "$what" "$rps" "$p50" "$p99" "$errors"
    done
done
