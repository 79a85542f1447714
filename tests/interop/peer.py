"""An independent MTGNet v1 peer in Python (PyNaCl, i.e. libsodium), written from
shared/spec/PROTOCOL.md alone, for interop checks of the Rust implementation.

Usage: peer.py client HOST PORT [SERVER_PK_B64|plain]   |   peer.py server PORT [plain]"""
import base64, json, os, socket, sys, random
from nacl.signing import SigningKey, VerifyKey
from nacl.public import PrivateKey, PublicKey, Box

def frame(payload: bytes) -> bytes:
    return b"%X:" % len(payload) + payload + b"\n"

def read_frame(sock, buf):
    while b":" not in buf:
        chunk = sock.recv(65536)
        if not chunk: raise EOFError("closed in header")
        buf += chunk
    head, rest = buf.split(b":", 1)
    n = int(head, 16)
    while len(rest) < n + 1:
        chunk = sock.recv(65536)
        if not chunk: raise EOFError("closed in payload")
        rest += chunk
    assert rest[n:n+1] == b"\n", "bad terminator"
    return rest[:n], rest[n+1:]

def handshake(sock, identity: SigningKey, pinned=None):
    eph = PrivateKey.generate()
    signed = identity.sign(bytes(eph.public_key))            # sig(64) || e_pk(32)
    sock.sendall(frame(bytes(identity.verify_key) + bytes(signed)))
    payload, rest = read_frame(sock, b"")
    assert len(payload) == 128, len(payload)
    peer_id, peer_signed = payload[:32], payload[32:]
    peer_e = VerifyKey(peer_id).verify(peer_signed)          # raises on bad signature
    if pinned is not None and peer_id != pinned: raise SystemExit("peer not authorized")
    box = Box(eph, PublicKey(peer_e))                        # crypto_box_beforenm
    return box, peer_id, rest

def seal(box, msg): return bytes(box.encrypt(msg, os.urandom(24)))   # nonce || mac || ct
def open_(box, payload): return box.decrypt(payload[24:], payload[:24])

def client(host, port, mode):
    sock = socket.create_connection((host, int(port)))
    box = None; rest = b""
    if mode != "plain":
        pinned = base64.b64decode(mode) if mode != "any" else None
        box, peer, rest = handshake(sock, SigningKey.generate(), pinned)
    big = random.randint(2**61, 2**62)
    # Lisp style (lower-case keys, big random ids) and PHP style (capitalised keys) in one request.
    req = ('[{"service":"System","method":"rpcVersion","args":[],"id":%d},'
           '{"Service":"test","Method":"ECHO","Args":["a\\/b \\u00e9"],"Id":"php-1"},'
           '{"service":"Test","method":"add","args":[4611686018427387904,4611686018427387905],"id":18446744073709551617},'
           '{"service":"Test","method":"echo","args":["note"]},'
           '{"service":"Test","method":"fail","id":7}]') % big
    sock.sendall(frame(seal(box, req.encode()) if box else req.encode()))
    payload, rest = read_frame(sock, rest)
    text = open_(box, payload) if box else payload
    assert b"null" not in text, text          # no null-valued properties
    results = json.loads(text)
    by_id = {json.dumps(r.get("id", r.get("Id"))): r for r in results}
    assert len(results) == 4, results
    assert by_id[str(big)]["data"] == {"major": 1, "minor": 0, "type": "draft", "revision": 1}
    assert by_id['"php-1"']["data"] == "a/b \u00e9"
    assert by_id["18446744073709551617"]["data"] == 9223372036854775809
    assert by_id["7"]["error"] == {"message": "boom", "code": 42}
    print("client ok:", text.decode())

def server(port, mode):
    lsock = socket.socket(); lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", int(port))); lsock.listen(4)
    print("listening", flush=True)
    ident = SigningKey.generate()
    print("public-key", base64.b64encode(bytes(ident.verify_key)).decode(), flush=True)
    for _ in range(int(os.environ.get("CONNS", "1"))):
        sock, _ = lsock.accept()
        box = None; rest = b""
        if mode != "plain":
            try:
                box, peer, rest = handshake(sock, ident)
            except (AssertionError, EOFError):   # not a v1 client (e.g. a v2 hello): drop it
                sock.close(); continue
        payload, rest = read_frame(sock, rest)
        calls = json.loads(open_(box, payload) if box else payload)
        results = []
        for c in calls:
            c = {k.lower(): v for k, v in c.items()}
            if c.get("id") is None: continue
            if c["method"].lower() == "fail":
                results.append({"error": {"message": "boom", "code": 42}, "id": c["id"]})
            else:   # Lisp-style result: data then id
                results.append({"data": c.get("args", [None])[0] if c.get("args") else None, "id": c["id"]})
        out = json.dumps(results).encode()
        sock.sendall(frame(seal(box, out) if box else out))
        sock.close()

if __name__ == "__main__":
    if sys.argv[1] == "client": client(*sys.argv[2:5])
    else: server(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "enc")
