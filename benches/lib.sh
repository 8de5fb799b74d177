# Shared by benches/compare.sh and benches/serving.sh (sourced; not run on its own).
# Expects BIN (the swin-serve binary), OUT (a scratch folder) and THREADS to be set.

# Test images, written with Python's standard library only:
#   write_images DIR            DIR/image.png: a 256x256 RGB PNG (a smooth pattern)
#   write_images DIR bombs      also DIR/bomb.png (9400x9400 black, ~260 KB) and DIR/bomb.gif
#                               (a 9459x9459 logical screen with a 1x1 frame, 35 bytes)
write_images() {
    python3 - "$@" <<'EOF'
import struct, sys, zlib
out, bombs = sys.argv[1], sys.argv[2:] == ["bombs"]
def png(path, w, h, row):
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    z = zlib.compressobj(9)
    data = b"".join(z.compress(b"\0" + row(y)) for y in range(h)) + z.flush()
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", data) + chunk(b"IEND", b""))
png(f"{out}/image.png", 256, 256, lambda y: bytes(v for x in range(256) for v in (x, y, (x * y) % 256)))
if bombs:
    black = bytes(9400 * 3)
    png(f"{out}/bomb.png", 9400, 9400, lambda y: black)
    gif = (b"GIF89a" + struct.pack("<HH", 9459, 9459) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
           + b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00" + b"\x02\x02\x44\x01\x00" + b"\x3b")
    open(f"{out}/bomb.gif", "wb").write(gif)
EOF
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server [serve flags...]: `serve --random-weights 0` on $PORT (URL $URL), 1 instance of $THREADS
# threads, max batch 8, log in $OUT/server.log (RUST_LOG=$SERVER_RUST_LOG, default warn); returns once it
# answers Info, sets SERVER_PID.
start_server() {
    RUST_LOG=${SERVER_RUST_LOG:-warn} "$BIN" serve --random-weights 0 --listen "127.0.0.1:$PORT" --threads "$THREADS" \
        --max-batch 8 "$@" > "$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 240); do
        if "$BIN" info --server "$URL" > /dev/null 2>&1; then return; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$OUT/server.log" >&2; exit 1; fi
        sleep 0.5
    done
    echo "server did not start" >&2; exit 1
}

# SIGTERM the server and wait for it.
stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
