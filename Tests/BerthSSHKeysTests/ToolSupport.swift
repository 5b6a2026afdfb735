import Foundation
import XCTest
import BerthTestSupport

/// Runs the independent implementations (OpenSSH's ssh-keygen, OpenSSL, python `cryptography`)
/// that the key tests compare Berth against.
struct Tools {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("berth-keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Self.pythonHelper.write(to: url("helper.py"), atomically: true, encoding: .utf8)
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }

    func url(_ name: String) -> URL { directory.appendingPathComponent(name) }
    func path(_ name: String) -> String { url(name).path }

    static func available(_ tool: String) -> Bool {
        ["/usr/bin", "/usr/local/bin", "/bin"].contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }
    }

    struct Result {
        var status: Int32
        var output: String
        var error: String
    }

    /// Output goes to files rather than pipes so a chatty tool cannot block on a full pipe.
    @discardableResult
    func run(_ arguments: [String], stdin: String? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let id = UUID().uuidString
        let outURL = url("out-\(id)"), errURL = url("err-\(id)")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let outHandle = try FileHandle(forWritingTo: outURL), errHandle = try FileHandle(forWritingTo: errURL)
        process.standardOutput = outHandle
        process.standardError = errHandle
        if let stdin {
            let inURL = url("in-\(id)")
            try stdin.write(to: inURL, atomically: true, encoding: .utf8)
            process.standardInput = try FileHandle(forReadingFrom: inURL)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        try process.run()
        process.waitUntilExit()
        try outHandle.close()
        try errHandle.close()
        let output = try String(contentsOf: outURL, encoding: .utf8)
        let error = try String(contentsOf: errURL, encoding: .utf8)
        return Result(status: process.terminationStatus, output: output, error: error)
    }

    /// Runs a command that must succeed; fails the test with its stderr otherwise.
    @discardableResult
    func must(_ arguments: [String], stdin: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let result = try run(arguments, stdin: stdin)
        if result.status != 0 {
            XCTFail("\(arguments.joined(separator: " ")) exited \(result.status): \(result.error)", file: file, line: line)
            throw CocoaError(.executableLoad)
        }
        return result.output
    }

    func read(_ name: String) throws -> String { try String(contentsOf: url(name), encoding: .utf8) }
    func write(_ name: String, _ text: String) throws {
        try text.write(to: url(name), atomically: true, encoding: .utf8)
        // ssh-keygen refuses private key files that others can read.
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path(name))
    }
    func write(_ name: String, bytes: [UInt8]) throws { try Data(bytes).write(to: url(name)) }

    /// `TYPE BASE64` of a public key line (drops the comment).
    static func keyFields(_ line: String) -> String {
        line.split(separator: " ").prefix(2).joined(separator: " ")
    }

    static let pythonAvailable: Bool = {
        guard available("python3") else { return false }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import cryptography.hazmat.primitives.serialization"]
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    /// python `cryptography` as a second independent implementation of the SSH signature and
    /// key encodings (RFC 4253, RFC 5656, RFC 8332); it does its own SSH wire encoding here.
    static let pythonHelper = #"""
        import sys, struct, hashlib
        from cryptography.hazmat.primitives import serialization, hashes
        from cryptography.hazmat.primitives.asymmetric import ed25519, ec, rsa, padding, utils
        from cryptography.exceptions import InvalidSignature

        def string(b): return struct.pack(">I", len(b)) + b
        def mpint(i): return string(b"" if i == 0 else i.to_bytes((i.bit_length() + 8) // 8, "big"))
        def read_string(b, o):
            (n,) = struct.unpack(">I", b[o:o + 4]); return b[o + 4:o + 4 + n], o + 4 + n
        def curve_hash(curve):
            return {"secp256r1": hashes.SHA256(), "secp384r1": hashes.SHA384(), "secp521r1": hashes.SHA512()}[curve.name]
        RSA_HASH = {"rsa-sha2-512": hashes.SHA512(), "rsa-sha2-256": hashes.SHA256(), "ssh-rsa": hashes.SHA1()}

        def load_private(path):
            data = open(path, "rb").read()
            if b"OPENSSH PRIVATE KEY" in data:
                return serialization.load_ssh_private_key(data, None)
            return serialization.load_pem_private_key(data, None)

        cmd = sys.argv[1]
        if cmd == "pub":
            key = load_private(sys.argv[2])
            print(key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode())
        elif cmd == "sign":
            key, alg, msg = load_private(sys.argv[2]), sys.argv[3], open(sys.argv[4], "rb").read()
            if isinstance(key, ed25519.Ed25519PrivateKey):
                body = key.sign(msg)
            elif isinstance(key, ec.EllipticCurvePrivateKey):
                r, s = utils.decode_dss_signature(key.sign(msg, ec.ECDSA(curve_hash(key.curve))))
                body = mpint(r) + mpint(s)
            else:
                body = key.sign(msg, padding.PKCS1v15(), RSA_HASH[alg])
            print((string(alg.encode()) + string(body)).hex())
        elif cmd == "verify":
            key = serialization.load_ssh_public_key(open(sys.argv[2], "rb").read())
            blob, msg = bytes.fromhex(sys.argv[3]), open(sys.argv[4], "rb").read()
            alg, o = read_string(blob, 0)
            body, o = read_string(blob, o)
            assert o == len(blob)
            alg = alg.decode()
            try:
                if isinstance(key, ed25519.Ed25519PublicKey):
                    assert alg == "ssh-ed25519"
                    key.verify(body, msg)
                elif isinstance(key, ec.EllipticCurvePublicKey):
                    assert alg == "ecdsa-sha2-nistp" + {"secp256r1": "256", "secp384r1": "384", "secp521r1": "521"}[key.curve.name]
                    r, o2 = read_string(body, 0)
                    s, o2 = read_string(body, o2)
                    assert o2 == len(body)
                    key.verify(utils.encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big")), msg, ec.ECDSA(curve_hash(key.curve)))
                else:
                    assert len(body) == key.key_size // 8
                    key.verify(body, msg, padding.PKCS1v15(), RSA_HASH[alg])
            except InvalidSignature:
                print("invalid"); sys.exit(1)
            print("ok")
        """#
}

extension Array where Element == UInt8 {
    init(hex: String) {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        self = bytes
    }
    var hex: String { map { String(format: "%02x", $0) }.joined() }
}
