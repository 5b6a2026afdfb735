import CCrypt
import Foundation

/// Checks a password against a crypt(3) hash with the system's libcrypt (yescrypt, SHA-crypt,
/// bcrypt…), so hashes from `mkpasswd` or /etc/shadow work unchanged.
enum CryptPassword {
    static func verify(_ password: [UInt8], hash: String) -> Bool {
        guard !hash.isEmpty, !password.contains(0) else { return false }
        // crypt_data is large (32 KiB) and crypt_r is only reentrant with one per call.
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        data.initialize(to: crypt_data())
        defer {
            data.deinitialize(count: 1)
            data.deallocate()
        }
        let computed: [UInt8]? = (password + [0]).withUnsafeBufferPointer { passwordBytes in
            passwordBytes.withMemoryRebound(to: CChar.self) { key in
                guard let result = crypt_r(key.baseAddress, hash, data) else { return nil }
                return Array(String(cString: result).utf8)
            }
        }
        guard let computed, computed.first != UInt8(ascii: "*") else { return false }
        return constantTimeEqual(computed, Array(hash.utf8))
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
