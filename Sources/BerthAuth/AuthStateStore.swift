import BerthCore
import Foundation
import Logging
import Synchronization

/// What must outlive a restart so that a replay stays a replay: the last TOTP step each user
/// spent and the highest signature counter each FIDO key showed. Kept in
/// `<ssh.stateDirectory>/auth-state.json` (0600), replaced whole and atomically on each change;
/// a login that changes it waits for the write. If the file cannot be written the server goes
/// on with what it holds in memory and says so. docs/security.md, "Second factor".
final class AuthStateStore: Sendable {
    struct State: Codable, Equatable {
        var totpSteps: [String: Int64] = [:]
        var securityKeyCounters: [String: UInt32] = [:]
    }

    private let state: Mutex<(value: State, writeFailing: Bool)>
    private let path: String?
    private let logger: Logger

    static let fileName = "auth-state.json"

    /// `directory` nil: memory only (tests of the pieces that use it).
    init(directory: String?, logger: Logger) {
        self.logger = logger
        path = directory.map { $0 + "/" + Self.fileName }
        var loaded = State()
        if let path, FileManager.default.fileExists(atPath: path) {
            do {
                loaded = try JSONCoding.decoder().decode(State.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
            } catch {
                // Starting empty weakens replay protection for one code's lifetime; refusing to
                // start would lock everyone out over a file the operator can delete.
                logger.log(.warning, "AUTH_STATE_UNREADABLE", "\(path) is not readable auth state; starting without it: \(error)")
            }
        }
        state = Mutex((loaded, false))
    }

    /// Changes the state under the lock; when it changed, writes it before returning.
    func update<T>(_ body: (inout State) -> T) -> T {
        state.withLock { held in
            let before = held.value
            let result = body(&held.value)
            if held.value != before, let path { held.writeFailing = !write(held.value, to: path, failing: held.writeFailing) }
            return result
        }
    }

    /// True when written. Logs the first failure of a run of failures and the recovery.
    private func write(_ value: State, to path: String, failing: Bool) -> Bool {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = path + ".tmp"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            guard FileManager.default.createFile(atPath: temporary, contents: try JSONCoding.encode(value), attributes: [.posixPermissions: 0o600]) else {
                throw BerthError("AUTH_STATE_WRITE_FAILED", "cannot create \(temporary)")
            }
            guard rename(temporary, path) == 0 else { throw BerthError("AUTH_STATE_WRITE_FAILED", "cannot rename \(temporary): errno \(errno)") }
            if failing { logger.log(.notice, "AUTH_STATE_WRITTEN", "auth state is written to \(path) again") }
            return true
        } catch {
            if !failing {
                logger.log(.warning, "AUTH_STATE_WRITE_FAILED", "cannot keep used codes and key counters in \(path); a restart forgets them: \(error)")
            }
            return false
        }
    }
}
