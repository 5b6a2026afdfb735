import Foundation
import NIOCore
import XCTest
@testable import BerthSSHCipher
import BerthTestSupport

/// Packets checked against an independent implementation: the script below builds and opens SSH
/// packets with python `cryptography`'s primitives (OpenSSL underneath, via a different path:
/// EVP ChaCha20 with the 128-bit IV layout OpenSSH itself uses, Cipher/CTR with its own counter).
/// Both directions: Berth's packets (random padding) must open there, its packets (fixed padding)
/// must equal Berth's byte for byte, and Berth must open them.
final class InteropTests: XCTestCase {
    func testAgainstPythonCryptography() throws {
        var rng = SeededGenerator(seed: 6)
        let combinations = Combination.all(using: &rng)
        let sizes = [0, 1, 7, 16, 100, 1500, 32768]
        let first: UInt32 = 0xFFFF_FFFD
        var cases: [[String: Any]] = []
        var expectedPayloads: [[[UInt8]]] = []
        var ourFixed: [[String]] = []
        for combination in combinations {
            let payloads = sizes.map { rng.bytes($0) }
            expectedPayloads.append(payloads)
            var randomSealer = try combination.sealer()
            var fixedSealer = try combination.sealer(padding: .fixed(0xA5))
            var stream = ByteBufferAllocator().buffer(capacity: 0)
            var fixed: [String] = []
            var packets: [[String: Any]] = []
            for (index, payload) in payloads.enumerated() {
                let sequence = first &+ UInt32(index)
                try randomSealer.seal(payload: buffer(payload), sequenceNumber: sequence, into: &stream)
                var one = ByteBufferAllocator().buffer(capacity: 0)
                try fixedSealer.seal(payload: buffer(payload), sequenceNumber: sequence, into: &one)
                fixed.append(hex(one.readableBytesView))
                packets.append(["seq": Int(sequence), "payload": hex(payload)])
            }
            ourFixed.append(fixed)
            cases.append([
                "cipher": combination.cipher, "mac": combination.mac ?? "", "key": hex(combination.key),
                "iv": hex(combination.iv), "macKey": hex(combination.macKey), "padByte": 0xA5,
                "packets": packets, "stream": hex(stream.readableBytesView),
            ])
        }
        let answer = try runReference(["cases": cases])
        let answered = try XCTUnwrap(answer["cases"] as? [[String: [String]]])
        XCTAssertEqual(answered.count, combinations.count)
        for (index, combination) in combinations.enumerated() {
            let theirs = answered[index]
            XCTAssertEqual(theirs["opened"], expectedPayloads[index].map { hex($0) }, "python opening \(combination)")
            XCTAssertEqual(theirs["sealed"], ourFixed[index], "byte equality \(combination)")
            var opener = try combination.opener()
            let stream = buffer((theirs["sealed"] ?? []).flatMap { bytes($0) })
            let opened = try openAll(stream, chunks: [5, 17, 333], opener: &opener, firstSequence: first)
            XCTAssertEqual(opened.map { Array($0.readableBytesView) }, expectedPayloads[index], "opening python's \(combination)")
        }
    }

    private func runReference(_ request: [String: Any]) throws -> [String: Any] {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("berth-ssh-packet-reference-\(getpid()).py")
        try referenceScript.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import cryptography"]
        probe.standardError = FileHandle.nullDevice
        do { try probe.run() } catch { throw XCTSkip("python3 not available") }
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else { throw XCTSkip("python cryptography not installed (pip install cryptography)") }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // Written and read on separate threads so neither pipe fills up and blocks the other side.
        let request = try JSONSerialization.data(withJSONObject: request)
        let writer = Thread {
            input.fileHandleForWriting.write(request)
            try? input.fileHandleForWriting.close()
        }
        writer.start()
        let errorText = ErrorCollector(errors.fileHandleForReading)
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "reference script failed: \(errorText.text())")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}

private final class ErrorCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread {
            let all = handle.readDataToEndOfFile()
            self.lock.lock()
            self.data = all
            self.lock.unlock()
            self.done.signal()
        }.start()
    }

    func text() -> String {
        done.wait()
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: data, as: UTF8.self)
    }
}

private let referenceScript = #"""
    # Independent SSH binary packet implementation on python `cryptography` primitives.
    import json, struct, sys
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives import hmac, hashes, poly1305
    from cryptography.hazmat.primitives.constant_time import bytes_eq

    HASHES = {"hmac-sha1": hashes.SHA1, "hmac-sha2-256": hashes.SHA256, "hmac-sha2-512": hashes.SHA512}

    def chacha(key, seq, counter, data):
        nonce = struct.pack("<Q", counter) + struct.pack(">Q", seq)
        return Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor().update(data)

    class Direction:
        def __init__(self, c):
            self.name = c["cipher"]
            self.key = bytes.fromhex(c["key"])
            self.iv = bytes.fromhex(c["iv"])
            self.mac = c.get("mac")
            self.etm = bool(self.mac) and self.mac.endswith("-etm@openssh.com")
            self.mackey = bytes.fromhex(c.get("macKey", ""))
            if self.name.endswith("-ctr") or self.name.endswith("-cbc"):
                mode = modes.CTR(self.iv) if self.name.endswith("-ctr") else modes.CBC(self.iv)
                self.enc = Cipher(algorithms.AES(self.key), mode).encryptor()
                self.dec = Cipher(algorithms.AES(self.key), mode).decryptor()
                self.block = 16
            elif "gcm" in self.name:
                self.block = 16
                self.invocation = int.from_bytes(self.iv[4:], "big")
            elif self.name.startswith("chacha20"):
                self.block = 8
            else:
                self.block = 8

        def hmac(self, data):
            h = hmac.HMAC(self.mackey, HASHES[self.mac.replace("-etm@openssh.com", "")]())
            h.update(data)
            return h.finalize()

        def gcm_nonce(self):
            n = self.iv[:4] + self.invocation.to_bytes(8, "big")
            self.invocation = (self.invocation + 1) % (1 << 64)
            return n

        def seal(self, seq, payload, padbyte):
            aead_or_etm = self.etm or "gcm" in self.name or self.name.startswith("chacha20")
            unpadded = (1 if aead_or_etm else 5) + len(payload)
            pad = self.block - unpadded % self.block
            if pad < 4:
                pad += self.block
            body = bytes([pad]) + payload + bytes([padbyte]) * pad
            length = struct.pack(">I", len(body))
            if self.name == "none":
                return length + body
            if "gcm" in self.name:
                return length + AESGCM(self.key).encrypt(self.gcm_nonce(), body, length)
            if self.name.startswith("chacha20"):
                k2, k1 = self.key[:32], self.key[32:]
                enc = chacha(k1, seq, 0, length) + chacha(k2, seq, 1, body)
                return enc + poly1305.Poly1305.generate_tag(chacha(k2, seq, 0, bytes(32)), enc)
            if self.etm:
                enc = length + self.enc.update(body)
                return enc + self.hmac(struct.pack(">I", seq) + enc)
            mac = self.hmac(struct.pack(">I", seq) + length + body)
            return self.enc.update(length + body) + mac

        def open(self, seq, stream):
            """Returns (payload, rest)."""
            if self.name == "none":
                n = struct.unpack(">I", stream[:4])[0]
                body, rest = stream[4:4 + n], stream[4 + n:]
            elif "gcm" in self.name:
                n = struct.unpack(">I", stream[:4])[0]
                body = AESGCM(self.key).decrypt(self.gcm_nonce(), stream[4:4 + n + 16], stream[:4])
                rest = stream[4 + n + 16:]
            elif self.name.startswith("chacha20"):
                k2, k1 = self.key[:32], self.key[32:]
                n = struct.unpack(">I", chacha(k1, seq, 0, stream[:4]))[0]
                tag = poly1305.Poly1305.generate_tag(chacha(k2, seq, 0, bytes(32)), stream[:4 + n])
                assert bytes_eq(tag, stream[4 + n:4 + n + 16]), "poly1305 tag"
                body, rest = chacha(k2, seq, 1, stream[4:4 + n]), stream[4 + n + 16:]
            elif self.etm:
                n = struct.unpack(">I", stream[:4])[0]
                maclen = len(self.hmac(b""))
                assert bytes_eq(self.hmac(struct.pack(">I", seq) + stream[:4 + n]), stream[4 + n:4 + n + maclen]), "etm mac"
                body, rest = self.dec.update(stream[4:4 + n]), stream[4 + n + maclen:]
            else:
                first = self.dec.update(stream[:self.block])
                n = struct.unpack(">I", first[:4])[0]
                plain = first + self.dec.update(stream[self.block:4 + n])
                maclen = len(self.hmac(b""))
                assert bytes_eq(self.hmac(struct.pack(">I", seq) + plain), stream[4 + n:4 + n + maclen]), "mac"
                body, rest = plain[4:], stream[4 + n + maclen:]
            pad = body[0]
            assert 4 <= pad < len(body), "padding"
            return body[1:len(body) - pad], rest

    def main():
        request = json.load(sys.stdin)
        out = []
        for c in request["cases"]:
            sealer, opener = Direction(c), Direction(c)
            sealed = [sealer.seal(p["seq"], bytes.fromhex(p["payload"]), c["padByte"]).hex() for p in c["packets"]]
            stream = bytes.fromhex(c["stream"])
            opened = []
            for p in c["packets"]:
                payload, stream = opener.open(p["seq"], stream)
                opened.append(payload.hex())
            assert not stream, "trailing bytes"
            out.append({"sealed": sealed, "opened": opened})
        json.dump({"cases": out}, sys.stdout)

    main()
    """#
