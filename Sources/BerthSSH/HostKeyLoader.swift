import BerthCore
import BerthSSHKeys
import Foundation
import Logging

/// Turns `ssh.hostkeys` entries into keys: each entry is inline key text (starting with
/// `-----`) or a file path, as in ContainerSSH. OpenSSH and PEM (PKCS#1, PKCS#8, SEC1) files
/// of every type the engine signs with are accepted, so a ContainerSSH RSA host key keeps the
/// fingerprint its users have pinned.
public enum HostKeyLoader {
    public static func load(entries: [String]) throws -> [SSHPrivateKey] {
        try entries.enumerated().map { index, entry in
            do {
                return try SSHPrivateKey(text: try text(of: entry))
            } catch let error as SSHKeyError {
                throw HostKeyConfigError(message: "ssh.hostkeys[\(index)]: \(error.message)")
            } catch let error as HostKeyFileError {
                throw HostKeyConfigError(message: "ssh.hostkeys[\(index)]: \(error.message)")
            }
        }
    }

    /// `ssh.hostCertificates`: each entry (a file, or inline `TYPE BASE64`) must be a host
    /// certificate for one of `hostKeys`, validly signed.
    public static func loadCertificates(entries: [String], hostKeys: [SSHPrivateKey]) throws -> [CertifiedHostKey] {
        try entries.enumerated().map { index, entry in
            let name = "ssh.hostCertificates[\(index)]"
            var text = entry
            if !entry.contains(" ") {
                do {
                    text = try String(contentsOfFile: entry, encoding: .utf8)
                } catch {
                    throw HostKeyConfigError(message: "\(name): cannot read \(entry): \((error as NSError).localizedDescription)")
                }
            }
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
            guard fields.count >= 2, let blob = Data(base64Encoded: String(fields[1])) else {
                throw HostKeyConfigError(message: "\(name): expected a certificate \"TYPE BASE64 [comment]\" (a -cert.pub file)")
            }
            do {
                let certificate = try SSHCertificate(blob: Array(blob))
                guard let key = hostKeys.first(where: { $0.publicKey == certificate.publicKey }) else {
                    throw HostKeyConfigError(message: "\(name): the certificate is for \(certificate.publicKey.fingerprintSHA256), which is not one of the host keys")
                }
                return try CertifiedHostKey(key: key, certificate: certificate)
            } catch let error as SSHKeyError {
                throw HostKeyConfigError(message: "\(name): \(error.message)")
            }
        }
    }

    private static func text(of entry: String) throws -> String {
        if entry.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("-----") { return entry }
        do {
            return try String(contentsOfFile: entry, encoding: .utf8)
        } catch {
            throw HostKeyFileError(message: "cannot read host key file \(entry): \((error as NSError).localizedDescription)")
        }
    }

    /// The keys kept when no host key is configured, as `ssh-keygen -A` makes them for OpenSSH:
    /// one of each kind, so a client that knows only one kind still connects.
    static let generatedKinds: [(file: String, kind: SSHKeyKind)] = [
        ("ssh_host_ed25519_key", .ed25519),
        ("ssh_host_ecdsa_key", .ecdsaP256),
        ("ssh_host_rsa_key", .rsa(bits: 3072)),
    ]

    /// With no configured host key: reuse the keys generated on an earlier start, or make and
    /// store the missing ones (mode 0600) so clients see the same host keys across restarts.
    public static func loadOrGenerate(stateDirectory: String, logger: Logger) throws -> [SSHPrivateKey] {
        try generatedKinds.map { file, kind in
            let path = (stateDirectory as NSString).appendingPathComponent(file)
            if FileManager.default.fileExists(atPath: path) {
                return try load(entries: [path])[0]
            }
            let key: SSHPrivateKey
            do {
                key = try SSHPrivateKey.generate(kind)
                try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                try KeyFileWriter.write(key.openSSHText(comment: "berth host key"), to: path)
            } catch {
                throw HostKeyConfigError(message: "cannot store generated host key at \(path): \(error)")
            }
            logger.log(
                .notice, "SSH_HOST_KEY_GENERATED", "no host key configured; generated a \(key.keyType) host key",
                ["path": "\(path)", "publicKey": "\(key.publicKey.authorizedKeysText)"])
            return key
        }
    }
}

struct HostKeyFileError: Error {
    let message: String
}

/// Writes secrets so that they are never readable by others, not even briefly, and never
/// through a file or symlink someone else put in the directory: the temporary file has a random
/// name and is created with O_EXCL (which also refuses a symlink) and mode 0600, then renamed
/// into place.
public enum KeyFileWriter {
    public static func write(_ text: String, to path: String) throws {
        try write(text, to: path, temporaryName: { path + ".tmp-" + randomSuffix() })
    }

    /// `temporaryName` is a parameter so tests can plant something at the name it returns.
    static func write(_ text: String, to path: String, temporaryName: () -> String) throws {
        let temporary = temporaryName()
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BerthError("KEY_WRITE_FAILED", "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var problem: String?
        if !writeAll(fd, Array(text.utf8)) || fsync(fd) != 0 {
            problem = "cannot write \(temporary): \(String(cString: strerror(errno)))"
        }
        close(fd)
        if problem == nil, rename(temporary, path) != 0 {
            problem = "cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))"
        }
        if let problem {
            unlink(temporary)
            throw BerthError("KEY_WRITE_FAILED", problem)
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }

    private static func randomSuffix() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(UInt8.random(in: 0...15, using: &generator), radix: 16) }.joined()
    }
}
