import BerthCore
import Foundation
import Logging
import NIOSSH

/// Turns `ssh.hostkeys` entries into keys: each entry is inline key text (starting with
/// `-----`) or a file path, as in ContainerSSH.
public enum HostKeyLoader {
    public static func load(entries: [String]) throws -> [NIOSSHPrivateKey] {
        try entries.enumerated().map { index, entry in
            do {
                return try parse(text: try text(of: entry))
            } catch let error as HostKeyError {
                throw HostKeyConfigError(message: "ssh.hostkeys[\(index)]: \(error)")
            }
        }
    }

    /// Parses one private key in OpenSSH or PEM form.
    static func parse(text: String) throws -> NIOSSHPrivateKey {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let begin = lines.first(where: { $0.hasPrefix("-----BEGIN ") }),
              let beginIndex = lines.firstIndex(of: begin),
              let endIndex = lines.firstIndex(where: { $0.hasPrefix("-----END ") })
        else { throw HostKeyError.malformed("no -----BEGIN … KEY----- block") }
        let label = String(begin.dropFirst("-----BEGIN ".count).dropLast(5))
        let body = lines[(beginIndex + 1)..<endIndex].filter { !$0.contains(":") }.joined()
        guard let der = Data(base64Encoded: body) else { throw HostKeyError.malformed("invalid base64") }
        if label == "OPENSSH PRIVATE KEY" {
            return try OpenSSHPrivateKeyFormat.parse(der: Array(der))
        }
        let pem = lines[beginIndex...endIndex].joined(separator: "\n")
        return try PEMPrivateKeyFormat.parse(label: label, der: Array(der), pem: pem)
    }

    private static func text(of entry: String) throws -> String {
        if entry.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("-----") { return entry }
        do {
            return try String(contentsOfFile: entry, encoding: .utf8)
        } catch {
            throw HostKeyError.unreadable(path: entry, reason: (error as NSError).localizedDescription)
        }
    }

    /// With no configured host key: reuse the key generated on an earlier start, or make and
    /// store one (mode 0600) so clients see the same host key across restarts.
    public static func loadOrGenerate(stateDirectory: String, logger: Logger) throws -> NIOSSHPrivateKey {
        let path = (stateDirectory as NSString).appendingPathComponent("ssh_host_ed25519_key")
        if FileManager.default.fileExists(atPath: path) {
            return try load(entries: [path])[0]
        }
        let key = GeneratedHostKey.generate(.ed25519)
        do {
            try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try KeyFileWriter.write(key.openSSHPrivateKey(comment: "berth host key"), to: path)
        } catch {
            throw HostKeyConfigError(message: "cannot store generated host key at \(path): \(error)")
        }
        logger.log(.notice, "SSH_HOST_KEY_GENERATED", "no host key configured; generated an ed25519 host key", ["path": "\(path)", "publicKey": "\(key.publicKeyLine)"])
        return key.sshKey
    }
}

/// Writes secrets so that they are never readable by others, not even briefly.
public enum KeyFileWriter {
    public static func write(_ text: String, to path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw BerthError("KEY_WRITE_FAILED", "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw BerthError("KEY_WRITE_FAILED", "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
