"""An audit log decoder independent of Berth's: Python's zlib and cbor2 read the binary format
(docs/configuration.md, "audit") as ContainerSSH documents it."""
import io
import zlib

import cbor2

MAGIC = b"ContainerSSH-Auditlog"


def decode(raw, require_trailer=False):
    assert len(raw) >= 40, f"only {len(raw)} bytes"
    assert raw[:32] == MAGIC + b"\0" * (32 - len(MAGIC)), raw[:32]
    assert int.from_bytes(raw[32:40], "little") == 2
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = inflater.decompress(raw[40:])
    if require_trailer:
        assert inflater.eof, "the gzip stream has no trailer"
    messages = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        start = stream.tell()
        try:
            messages.append(cbor2.CBORDecoder(stream).decode())
        except (cbor2.CBORDecodeEOF, EOFError):
            stream.seek(start)
            break
    return messages


def io_bytes(messages, channel, stream):
    return b"".join(m["payload"]["data"] for m in messages
                    if m["type"] == 500 and m["channelId"] == channel and m["payload"]["stream"] == stream)
