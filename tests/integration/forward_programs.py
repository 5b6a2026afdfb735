"""Small programs the forwarding tests run inside the container (python3 of the guest image),
sent base64-encoded so no shell quoting is involved."""
import base64

UNIX_ECHO_SERVER = r'''
import socket, sys, threading
path = sys.argv[1]
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(8)
print("listening", flush=True)
def serve(conn):
    while True:
        data = conn.recv(1 << 16)
        if not data:
            break
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)
    conn.close()
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
'''

# Connects to a unix socket, sends SIZE random bytes while reading the echo back, and prints the
# SHA-256 of what it sent and of what came back.
UNIX_ECHO_CLIENT = r'''
import hashlib, os, socket, sys, threading
path, size = sys.argv[1], int(sys.argv[2])
conn = socket.socket(socket.AF_UNIX)
conn.connect(path)
sent = hashlib.sha256()
def send():
    left = size
    while left:
        chunk = os.urandom(min(left, 1 << 20))
        sent.update(chunk)
        conn.sendall(chunk)
        left -= len(chunk)
    conn.shutdown(socket.SHUT_WR)
writer = threading.Thread(target=send)
writer.start()
received = hashlib.sha256()
count = 0
while True:
    data = conn.recv(1 << 20)
    if not data:
        break
    received.update(data)
    count += len(data)
writer.join()
print(sent.hexdigest(), received.hexdigest(), count, flush=True)
'''

# An X client: finds its display's cookie (XAUTHORITY or ~/.Xauthority, Xau format), connects to
# localhost:6000+N, sends the connection setup with the cookie and a message, prints what the
# server answers. With "again", then tries a second connection and prints whether it worked.
X_CLIENT = r'''
import os, socket, struct, sys
display = os.environ["DISPLAY"]
number = display.rsplit(":", 1)[1].split(".")[0]
path = os.environ.get("XAUTHORITY") or os.path.expanduser("~/.Xauthority")
data = open(path, "rb").read()
cookie = None
offset = 0
while offset < len(data):
    family = struct.unpack(">H", data[offset:offset + 2])[0]
    offset += 2
    fields = []
    for _ in range(4):
        length = struct.unpack(">H", data[offset:offset + 2])[0]
        fields.append(data[offset + 2:offset + 2 + length])
        offset += 2 + length
    if fields[1].decode() == number and fields[2] == b"MIT-MAGIC-COOKIE-1":
        cookie = fields[3]
        break
assert cookie is not None, "no cookie for display " + number
def pad(b):
    return b + b"\0" * (-len(b) % 4)
name = b"MIT-MAGIC-COOKIE-1"
conn = socket.create_connection(("127.0.0.1", 6000 + int(number)))
conn.sendall(b"l\0" + struct.pack("<HHHH2x", 11, 0, len(name), len(cookie)) + pad(name) + pad(cookie))
conn.sendall(b"ping-from-the-x-client")
answer = b""
while not answer.endswith(b"!"):
    chunk = conn.recv(4096)
    if not chunk:
        break
    answer += chunk
print("answer:" + answer.decode(), flush=True)
conn.close()
if len(sys.argv) > 1 and sys.argv[1] == "again":
    try:
        socket.create_connection(("127.0.0.1", 6000 + int(number)), timeout=10).close()
        print("second:connected", flush=True)
    except OSError as error:
        print("second:refused", flush=True)
'''


def command(program, *args):
    encoded = base64.b64encode(program.encode()).decode()
    quoted = " ".join(f"'{arg}'" for arg in args)
    return f"echo {encoded} | base64 -d > /tmp/prog-$$.py && exec python3 /tmp/prog-$$.py {quoted}"


def read_x11_setup(read):
    """Reads an X11 connection setup (little- or big-endian) with `read(n)`; returns (auth name, auth data)."""
    import struct
    head = read(12)
    order = "<" if head[:1] == b"l" else ">"
    _, _, name_length, data_length = struct.unpack(order + "HHHH", head[2:10])
    name = read(name_length + (-name_length % 4))[:name_length]
    data = read(data_length + (-data_length % 4))[:data_length]
    return name, data
