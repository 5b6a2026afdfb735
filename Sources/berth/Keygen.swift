import ArgumentParser
import BerthSSH
import BerthSSHKeys
import Foundation

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate an SSH host key (OpenSSH format, mode 0600) for ssh.hostkeys."
    )

    static let types = ["ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa"]

    @Option(name: .long, help: "Key type: \(Keygen.types.joined(separator: ", ")).")
    var type: String = "ed25519"

    @Option(name: .long, help: "Size of an RSA key in bits (2048 to 8192).")
    var bits: Int = 3072

    @Option(name: .long, help: "File to write the private key to. Without it the private key goes to standard output.")
    var output: String?

    @Option(name: .long, help: "Comment stored in the key.")
    var comment: String = "berth host key"

    func validate() throws {
        guard Self.types.contains(type) else {
            throw ValidationError("--type must be one of \(Self.types.joined(separator: ", "))")
        }
        guard (2048...8192).contains(bits) else {
            throw ValidationError("--bits must be between 2048 and 8192")
        }
    }

    func run() throws {
        let kind: SSHKeyKind
        switch type {
        case "ecdsa-p256": kind = .ecdsaP256
        case "ecdsa-p384": kind = .ecdsaP384
        case "ecdsa-p521": kind = .ecdsaP521
        case "rsa": kind = .rsa(bits: bits)
        default: kind = .ed25519
        }
        let key = try SSHPrivateKey.generate(kind)
        let privateKey = key.openSSHText(comment: comment)
        if let output {
            if FileManager.default.fileExists(atPath: output) {
                throw ValidationError("\(output) already exists; remove it first to replace the key")
            }
            try KeyFileWriter.write(privateKey, to: output)
            print(key.publicKey.authorizedKeysText + " " + comment)
        } else {
            print(privateKey, terminator: "")
        }
    }
}
