import CCrypt
import Foundation
import NIOPosix

/// Password hashes are deliberately slow (yescrypt takes tens of milliseconds). They run on a
/// thread of their own, so a burst of password guesses delays only other password checks, never
/// the event loops and tasks that move running sessions' bytes.
public enum PasswordHashing {
    private static let pool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        return pool
    }()

    public static func verify(_ password: [UInt8], hash: String) async -> Bool {
        (try? await pool.runIfActive { CryptPassword.verify(password, hash: hash) }) ?? false
    }
}

/// Checks a password against a crypt(3) hash with the system's libcrypt (yescrypt, SHA-crypt,
/// bcrypt…), so hashes from `mkpasswd` or /etc/shadow work unchanged.
public enum CryptPassword {
    /// A valid yescrypt hash of a random password nobody knows, checked for unknown users.
    public static let decoyHash = "$y$j9T$Z0QdJUe6M3VpfoSkKkuia/$ENL4gjCey.UvLgwBDDJcHP7IuM/mwUEoxSY42R66FU9"
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
