import ArgumentParser
import BerthSSH
import Foundation

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate an SSH host key (OpenSSH format, mode 0600) for ssh.hostkeys.",
        discussion: "RSA is not offered: the SSH library Berth uses supports ed25519 and ECDSA host keys only."
    )

    @Option(name: .long, help: "Key type: \(GeneratedHostKey.Kind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var type: String = GeneratedHostKey.Kind.ed25519.rawValue

    @Option(name: .long, help: "File to write the private key to. Without it the private key goes to standard output.")
    var output: String?

    @Option(name: .long, help: "Comment stored in the key.")
    var comment: String = "berth host key"

    func run() throws {
        guard let kind = GeneratedHostKey.Kind(rawValue: type) else {
            throw ValidationError("--type must be one of \(GeneratedHostKey.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let key = GeneratedHostKey.generate(kind)
        let privateKey = key.openSSHPrivateKey(comment: comment)
        if let output {
            if FileManager.default.fileExists(atPath: output) {
                throw ValidationError("\(output) already exists; remove it first to replace the key")
            }
            try KeyFileWriter.write(privateKey, to: output)
            print(key.publicKeyLine)
        } else {
            print(privateKey, terminator: "")
        }
    }
}
