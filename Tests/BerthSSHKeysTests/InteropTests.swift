@testable import BerthSSHKeys
import BerthSSHWire
import Crypto
import Foundation
import NIOCore
import XCTest

/// Berth's keys against OpenSSH's ssh-keygen, OpenSSL and python `cryptography`.
final class SSHKeysInteropTests: XCTestCase {
    var tools: Tools!

    override func setUpWithError() throws {
        try XCTSkipUnless(Tools.available("ssh-keygen"), "ssh-keygen is not installed")
        tools = try Tools()
    }

    override func tearDown() {
        tools?.remove()
    }

    /// ssh-keygen arguments for every kind Berth supports.
    static let keygenKinds: [(name: String, arguments: [String], type: String)] = [
        ("ed25519", ["-t", "ed25519"], "ssh-ed25519"),
        ("p256", ["-t", "ecdsa", "-b", "256"], "ecdsa-sha2-nistp256"),
        ("p384", ["-t", "ecdsa", "-b", "384"], "ecdsa-sha2-nistp384"),
        ("p521", ["-t", "ecdsa", "-b", "521"], "ecdsa-sha2-nistp521"),
        ("rsa2048", ["-t", "rsa", "-b", "2048"], "ssh-rsa"),
        ("rsa3072", ["-t", "rsa", "-b", "3072"], "ssh-rsa"),
    ]

    static let berthKinds: [(name: String, kind: SSHKeyKind)] = [
        ("ed25519", .ed25519), ("p256", .ecdsaP256), ("p384", .ecdsaP384), ("p521", .ecdsaP521),
        ("rsa2048", .rsa(bits: 2048)), ("rsa3072", .rsa(bits: 3072)),
    ]

    private func keygen(_ name: String, _ arguments: [String], format: String? = nil, comment: String = "") throws {
        var command = ["ssh-keygen", "-q", "-N", "", "-C", comment, "-f", tools.path(name)] + arguments
        if let format { command += ["-m", format] }
        try tools.must(command)
    }

    private func keygenPublic(_ name: String) throws -> String {
        Tools.keyFields(try tools.must(["ssh-keygen", "-y", "-f", tools.path(name)]).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func testSSHKeygenOpenSSHFilesLoadWithTheirPublicKey() throws {
        for (name, arguments, type) in Self.keygenKinds {
            try keygen(name, arguments, comment: "user@\(name)")
            let key = try SSHPrivateKey(text: try tools.read(name))
            XCTAssertEqual(key.keyType, type, name)
            XCTAssertEqual(key.comment, "user@\(name)", name)
            XCTAssertEqual(key.publicKey.authorizedKeysText, try keygenPublic(name), name)
            let pub = try SSHPublicKey(authorizedKeysText: try tools.read("\(name).pub"))
            XCTAssertEqual(pub, key.publicKey, name)
            let fingerprint = try tools.must(["ssh-keygen", "-l", "-E", "sha256", "-f", tools.path("\(name).pub")])
            XCTAssertEqual(fingerprint.split(separator: " ")[1], Substring(key.publicKey.fingerprintSHA256), name)
        }
    }

    /// Same bytes as ssh-keygen's file once the random check integers are set aside, and the same
    /// base64 line layout.
    func testWrittenOpenSSHFilesHaveSSHKeygensLayout() throws {
        for (name, arguments, _) in Self.keygenKinds {
            try keygen(name, arguments, comment: "layout@\(name)")
            let original = try tools.read(name)
            let key = try SSHPrivateKey(text: original)
            let written = key.openSSHText(comment: "layout@\(name)")
            let originalLines = original.split(separator: "\n"), writtenLines = written.split(separator: "\n")
            XCTAssertEqual(originalLines.map(\.count), writtenLines.map(\.count), name)
            XCTAssertEqual(originalLines.first, writtenLines.first)
            XCTAssertEqual(originalLines.last, writtenLines.last)
            XCTAssertTrue(written.hasSuffix("-----\n"))
            var originalBytes = try Self.body(original), writtenBytes = try Self.body(written)
            let checkOffset = try Self.checkIntegerOffset(originalBytes)
            XCTAssertEqual(checkOffset, try Self.checkIntegerOffset(writtenBytes), name)
            XCTAssertEqual(writtenBytes[checkOffset..<(checkOffset + 4)], writtenBytes[(checkOffset + 4)..<(checkOffset + 8)], name)
            originalBytes.replaceSubrange(checkOffset..<(checkOffset + 8), with: [UInt8](repeating: 0, count: 8))
            writtenBytes.replaceSubrange(checkOffset..<(checkOffset + 8), with: [UInt8](repeating: 0, count: 8))
            XCTAssertEqual(originalBytes.hex, writtenBytes.hex, name)
            // ssh-keygen draws new check integers for every file.
            XCTAssertNotEqual(written, key.openSSHText(comment: "layout@\(name)"), name)
        }
    }

    static func body(_ text: String) throws -> [UInt8] {
        let base64 = text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        return Array(try XCTUnwrap(Data(base64Encoded: base64)))
    }

    static func checkIntegerOffset(_ bytes: [UInt8]) throws -> Int {
        var buffer = ByteBuffer(bytes: bytes)
        buffer.moveReaderIndex(forwardBy: 15)
        for _ in 0..<3 { _ = try XCTUnwrap(buffer.readSSHString()) }
        _ = try XCTUnwrap(buffer.readSSHUInt32())
        _ = try XCTUnwrap(buffer.readSSHString())
        _ = try XCTUnwrap(buffer.readSSHUInt32())
        return buffer.readerIndex
    }

    func testKeysBerthWritesLoadInSSHKeygen() throws {
        for (name, kind) in Self.berthKinds {
            let key = try SSHPrivateKey.generate(kind)
            XCTAssertEqual(key.kind, kind)
            try tools.write(name, key.openSSHText(comment: "berth@\(name)"))
            XCTAssertEqual(try keygenPublic(name), key.publicKey.authorizedKeysText, name)
            // -c changes the comment, which makes ssh-keygen decode the whole private part and
            // write it back; the rewritten file must still be the same key.
            try tools.must(["ssh-keygen", "-q", "-c", "-C", "renamed", "-f", tools.path(name)])
            let reread = try SSHPrivateKey(text: try tools.read(name))
            XCTAssertEqual(reread.publicKey, key.publicKey, name)
            XCTAssertEqual(reread.comment, "renamed")
        }
    }

    func testPEMFilesLoad() throws {
        try XCTSkipUnless(Tools.available("openssl"), "openssl is not installed")
        // (file, label the file must carry, command producing it)
        var files: [(String, String, [String])] = [
            ("rsa-pkcs1", "RSA PRIVATE KEY", []), ("rsa-pkcs8", "PRIVATE KEY", []),
            ("p256-sec1", "EC PRIVATE KEY", []), ("p384-sec1", "EC PRIVATE KEY", []), ("p521-pkcs8", "PRIVATE KEY", []),
        ]
        try keygen("rsa-pkcs1", ["-t", "rsa", "-b", "2048"], format: "PEM")
        try keygen("rsa-pkcs8", ["-t", "rsa", "-b", "3072"], format: "PKCS8")
        try keygen("p256-sec1", ["-t", "ecdsa", "-b", "256"], format: "PEM")
        try keygen("p384-sec1", ["-t", "ecdsa", "-b", "384"], format: "PEM")
        try keygen("p521-pkcs8", ["-t", "ecdsa", "-b", "521"], format: "PKCS8")
        let openssl: [(String, String, [String])] = [
            ("ossl-ed25519-pkcs8", "PRIVATE KEY", ["openssl", "genpkey", "-algorithm", "ed25519"]),
            ("ossl-p256-sec1", "EC PRIVATE KEY", ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout"]),
            ("ossl-p521-sec1", "EC PRIVATE KEY", ["openssl", "ecparam", "-name", "secp521r1", "-genkey", "-noout"]),
            ("ossl-p384-pkcs8", "PRIVATE KEY", ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]),
            ("ossl-rsa-pkcs8", "PRIVATE KEY", ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
            ("ossl-rsa-pkcs1", "RSA PRIVATE KEY", ["openssl", "genrsa", "-traditional"]),
        ]
        for (name, label, command) in openssl {
            // genrsa wants the size last.
            try tools.must(command + ["-out", tools.path(name)] + (name == "ossl-rsa-pkcs1" ? ["2048"] : []))
            files.append((name, label, command))
        }
        for (name, label, _) in files {
            let text = try tools.read(name)
            XCTAssertTrue(text.contains("-----BEGIN \(label)-----"), "\(name) is not \(label)")
            let key = try SSHPrivateKey(text: text)
            if Tools.pythonAvailable {
                let expected = try tools.must(["python3", tools.path("helper.py"), "pub", tools.path(name)])
                XCTAssertEqual(key.publicKey.authorizedKeysText, Tools.keyFields(expected.trimmingCharacters(in: .whitespacesAndNewlines)), name)
            }
            if !name.contains("ed25519") {
                try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: tools.path(name))
                XCTAssertEqual(key.publicKey.authorizedKeysText, try keygenPublic(name), name)
            }
        }
    }

    // MARK: signatures with OpenSSH (ssh-keygen -Y, PROTOCOL.sshsig)

    /// The data an SSHSIG signature covers: it wraps the message hash, so ssh-keygen can check a
    /// raw SSH signature blob made by Berth and Berth can check one made by ssh-keygen.
    static func sshsigSignedData(namespace: String, message: String) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeBytes(Array("SSHSIG".utf8))
        buffer.writeSSHText(namespace)
        buffer.writeSSHText("")
        buffer.writeSSHText("sha512")
        buffer.writeSSHString(Array(SHA512Digest.of(message)))
        return Array(buffer.readableBytesView)
    }

    static func sshsigArmour(publicKey: [UInt8], namespace: String, signature: [UInt8]) -> String {
        var buffer = ByteBuffer()
        buffer.writeBytes(Array("SSHSIG".utf8))
        buffer.writeSSHUInt32(1)
        buffer.writeSSHString(publicKey)
        buffer.writeSSHText(namespace)
        buffer.writeSSHText("")
        buffer.writeSSHText("sha512")
        buffer.writeSSHString(signature)
        let base64 = Data(buffer.readableBytesView).base64EncodedString(options: [.lineLength76Characters, .endLineWithLineFeed])
        return "-----BEGIN SSH SIGNATURE-----\n\(base64)\n-----END SSH SIGNATURE-----\n"
    }

    static func sshsigParse(_ text: String) throws -> (publicKey: [UInt8], signature: [UInt8]) {
        var buffer = ByteBuffer(bytes: try body(text))
        XCTAssertEqual(buffer.readBytes(length: 6), Array("SSHSIG".utf8))
        XCTAssertEqual(buffer.readSSHUInt32(), 1)
        let publicKey = try XCTUnwrap(buffer.readSSHStringBytes())
        XCTAssertEqual(buffer.readSSHText(), "berth")
        XCTAssertEqual(buffer.readSSHText(), "")
        XCTAssertEqual(buffer.readSSHText(), "sha512")
        return (publicKey, try XCTUnwrap(buffer.readSSHStringBytes()))
    }

    func testSignaturesBothWaysWithOpenSSH() throws {
        var keys: [(String, SSHPrivateKey)] = []
        for (name, arguments, _) in Self.keygenKinds {
            try keygen("kg-\(name)", arguments)
            keys.append(("kg-\(name)", try SSHPrivateKey(text: try tools.read("kg-\(name)"))))
        }
        for (name, kind) in Self.berthKinds {
            let key = try SSHPrivateKey.generate(kind)
            try tools.write("b-\(name)", key.openSSHText(comment: ""))
            keys.append(("b-\(name)", key))
        }
        let message = "message signed for Berth's key tests\n"
        try tools.write("message", message)
        for (name, key) in keys {
            // OpenSSH signs (with the file, including files Berth wrote), Berth verifies.
            try tools.must(["ssh-keygen", "-Y", "sign", "-q", "-f", tools.path(name), "-n", "berth", tools.path("message")])
            let (signer, openSSHSignature) = try Self.sshsigParse(try tools.read("message.sig"))
            XCTAssertEqual(signer, key.publicKeyBlob, name)
            XCTAssertTrue(key.publicKey.verify(signatureBlob: openSSHSignature, over: Self.sshsigSignedData(namespace: "berth", message: message)), name)
            XCTAssertFalse(key.publicKey.verify(signatureBlob: openSSHSignature, over: Self.sshsigSignedData(namespace: "berth", message: message + "x")), name)
            try FileManager.default.removeItem(at: tools.url("message.sig"))

            // Berth signs, OpenSSH verifies. sshsig refuses SHA-1, so ssh-rsa is checked with python.
            try tools.write("allowed", "signer@berth \(key.publicKey.authorizedKeysText)\n")
            for algorithm in key.signatureAlgorithms where algorithm != "ssh-rsa" {
                let signature = try key.sign(Self.sshsigSignedData(namespace: "berth", message: message), algorithm: algorithm)
                try tools.write("berth.sig", Self.sshsigArmour(publicKey: key.publicKeyBlob, namespace: "berth", signature: signature))
                let verify = ["ssh-keygen", "-Y", "verify", "-f", tools.path("allowed"), "-I", "signer@berth", "-n", "berth", "-s", tools.path("berth.sig")]
                let good = try tools.run(verify, stdin: message)
                XCTAssertEqual(good.status, 0, "\(name) \(algorithm): \(good.error)")
                let bad = try tools.run(verify, stdin: message + "x")
                XCTAssertNotEqual(bad.status, 0, "\(name) \(algorithm)")
            }
        }
    }

    // MARK: signatures with python cryptography

    func testSignaturesBothWaysWithPythonCryptography() throws {
        try XCTSkipUnless(Tools.pythonAvailable, "python3 with cryptography is not installed")
        let helper = tools.path("helper.py")
        let message = "python and Berth sign the same message"
        try tools.write("message", message)
        try tools.write("tampered", message + ".")
        for (name, kind) in Self.berthKinds {
            let key = try SSHPrivateKey.generate(kind)
            try tools.write(name, key.openSSHText(comment: ""))
            try tools.write("\(name).pub", key.publicKey.authorizedKeysText + "\n")
            for algorithm in key.signatureAlgorithms {
                let berth = try key.sign(Array(message.utf8), algorithm: algorithm)
                let ok = try tools.run(["python3", helper, "verify", tools.path("\(name).pub"), berth.hex, tools.path("message")])
                XCTAssertEqual(ok.status, 0, "\(name) \(algorithm): \(ok.output) \(ok.error)")
                let tampered = try tools.run(["python3", helper, "verify", tools.path("\(name).pub"), berth.hex, tools.path("tampered")])
                XCTAssertEqual(tampered.output.trimmingCharacters(in: .whitespacesAndNewlines), "invalid", "\(name) \(algorithm)")

                let python = [UInt8](
                    hex: try tools.must(["python3", helper, "sign", tools.path(name), algorithm, tools.path("message")]).trimmingCharacters(in: .whitespacesAndNewlines))
                XCTAssertTrue(key.publicKey.verify(signatureBlob: python, over: Array(message.utf8)), "\(name) \(algorithm)")
                XCTAssertFalse(key.publicKey.verify(signatureBlob: python, over: Array((message + ".").utf8)), "\(name) \(algorithm)")
            }
        }
    }

    /// PKCS#1 v1.5 signatures are deterministic, so Berth's must equal OpenSSL's byte for byte
    /// (RFC 8332: the signature blob carries the raw signature, as long as the modulus).
    func testRSASignaturesEqualOpenSSLs() throws {
        try XCTSkipUnless(Tools.available("openssl"), "openssl is not installed")
        try keygen("rsa", ["-t", "rsa", "-b", "2048"], format: "PEM")
        let key = try SSHPrivateKey(text: try tools.read("rsa"))
        let message = "deterministic"
        try tools.write("message", message)
        for (algorithm, digest) in [("rsa-sha2-512", "-sha512"), ("rsa-sha2-256", "-sha256"), ("ssh-rsa", "-sha1")] {
            try tools.must(["openssl", "dgst", digest, "-sign", tools.path("rsa"), "-out", tools.path("sig.bin"), tools.path("message")])
            let expected = Array(try Data(contentsOf: tools.url("sig.bin")))
            var blob = ByteBuffer(bytes: try key.sign(Array(message.utf8), algorithm: algorithm))
            XCTAssertEqual(blob.readSSHText(), algorithm)
            XCTAssertEqual(blob.readSSHStringBytes()?.hex, expected.hex, algorithm)
            XCTAssertEqual(blob.readableBytes, 0)
        }
    }

    /// OpenSSH still accepts 1024-bit RSA user keys; Berth verifies them but will not load one as
    /// a private key.
    func test1024BitRSAVerifiesButIsRefusedAsPrivateKey() throws {
        try keygen("rsa1024", ["-t", "rsa", "-b", "1024"])
        XCTAssertThrowsError(try SSHPrivateKey(text: try tools.read("rsa1024"))) { error in
            XCTAssertEqual((error as? SSHKeyError)?.code, "SSH_KEY_RSA_TOO_SMALL")
        }
        let publicKey = try SSHPublicKey(authorizedKeysText: try tools.read("rsa1024.pub"))
        let message = "small key"
        try tools.write("message", message)
        try tools.must(["ssh-keygen", "-Y", "sign", "-q", "-f", tools.path("rsa1024"), "-n", "berth", tools.path("message")])
        let (_, signature) = try Self.sshsigParse(try tools.read("message.sig"))
        XCTAssertTrue(publicKey.verify(signatureBlob: signature, over: Self.sshsigSignedData(namespace: "berth", message: message)))
        XCTAssertFalse(publicKey.verify(signatureBlob: signature, over: Self.sshsigSignedData(namespace: "other", message: message)))
    }

    func testEncryptedKeysAreRefusedWithAdvice() throws {
        try keygen("enc-openssh", ["-t", "ed25519", "-N", "secret"])
        try keygen("enc-pem", ["-t", "rsa", "-b", "2048", "-N", "secret"], format: "PEM")
        var names = ["enc-openssh", "enc-pem"]
        if Tools.available("openssl") {
            try tools.must(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes256", "-pass", "pass:secret", "-out", tools.path("enc-pkcs8")])
            names.append("enc-pkcs8")
        }
        for name in names {
            XCTAssertThrowsError(try SSHPrivateKey(text: try tools.read(name)), name) { error in
                XCTAssertEqual((error as? SSHKeyError)?.code, "SSH_KEY_ENCRYPTED", name)
                XCTAssertEqual((error as? SSHKeyError)?.message, "encrypted keys are not supported; decrypt with ssh-keygen -p")
            }
        }
    }
}

enum SHA512Digest {
    static func of(_ text: String) -> [UInt8] { Array(SHA512.hash(data: Array(text.utf8))) }
}
