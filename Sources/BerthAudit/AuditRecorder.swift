import BerthCBOR
import BerthConfig
import BerthCore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The audit log of one connection: stamps messages, encodes them and writes them out in the
/// order they happened. A storage failure is logged once and recording stops for this
/// connection; the user's session is not affected.
///
/// Messages are stamped where they happen and handed to one writer queue shared by every
/// connection, which encodes (CBOR, gzip) and writes them, so neither compression nor a slow disk
/// runs on a connection's event loop. The queue is bounded: a connection more than
/// `maxPendingBytes` ahead of the writer waits for it, so nothing is lost and memory stays
/// bounded (docs/architecture.md, "Data path").
final class AuditRecorder: Sendable {
    let connectionID: String
    let intercept: AuditConfig.Intercept
    private let storage: any AuditStorage
    private let logger: Logger
    private let state: NIOLockedValueBox<State>
    /// Bytes of payload handed to the writer and not written yet.
    private let pending = PendingBytes(limit: AuditRecorder.maxPendingBytes)

    static let maxPendingBytes = 8 << 20
    private static let writer = DispatchQueue(label: "berth.audit-writer")
    /// The recorders of open connections, by connection ID, for records other layers add
    /// (`AuditNotes`).
    static let open = NIOLockedValueBox<[String: AuditRecorder]>([:])

    /// Returns once everything recorded so far, by any connection, is written.
    static func drain() async {
        await withCheckedContinuation { continuation in writer.async { continuation.resume() } }
    }

    private struct State: @unchecked Sendable {
        var encoder: any AuditEncoder
        var writers: [String: AuditObjectWriter] = [:]
        var info: AuditObjectInfo
        var failed = false
        var closed = false
    }

    init(
        connectionID: String, format: AuditConfig.Format, intercept: AuditConfig.Intercept, storage: any AuditStorage,
        info: AuditObjectInfo, logger: Logger
    ) {
        self.connectionID = connectionID
        self.intercept = intercept
        self.storage = storage
        self.logger = logger
        let encoder: any AuditEncoder = format == .asciinema ? AsciinemaAuditEncoder(connectionID: connectionID) : BinaryAuditEncoder(connectionID: connectionID)
        state = NIOLockedValueBox(State(encoder: encoder, info: info))
    }

    func record(_ type: AuditMessageType, _ payload: AuditPayload? = nil, channel: UInt64? = nil) {
        let message = AuditMessage(connectionID: connectionID, timestamp: Self.now(), type: type, payload: payload?.value, channelID: channel)
        let size = 64 + (payload?.byteCount ?? 0)
        pending.add(size)
        Self.writer.async { [self] in
            state.withLockedValue { state in
                guard !state.closed, !state.failed else { return }
                write(state.encoder.encode(message), &state)
            }
            pending.remove(size)
        }
    }

    func setUsername(_ username: String) {
        Self.writer.async { [self] in
            let (info, names) = state.withLockedValue { state -> (AuditObjectInfo, [String]) in
                state.info.username = username
                return (state.info, Array(state.writers.keys))
            }
            for name in names { storage.update(name, info: info) }
        }
    }

    /// Ends every object of the connection (gzip trailer, upload for S3) after everything it
    /// recorded is written; returns when that is done.
    func close() async {
        _ = Self.open.withLockedValue { $0.removeValue(forKey: connectionID) }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Self.writer.async { [self] in
                state.withLockedValue { state in
                    guard !state.closed else { return }
                    state.closed = true
                    if !state.failed { write(state.encoder.finish(), &state) }
                    for writer in state.writers.values { writer.close() }
                    state.writers = [:]
                }
                continuation.resume()
            }
        }
    }

    private func write(_ pieces: [(name: String, bytes: [UInt8])], _ state: inout State) {
        for (name, bytes) in pieces where !bytes.isEmpty {
            do {
                let writer: AuditObjectWriter
                if let open = state.writers[name] {
                    writer = open
                } else {
                    writer = try storage.open(name, info: state.info)
                    state.writers[name] = writer
                }
                try writer.append(bytes)
            } catch {
                state.failed = true
                logger.log(.error, "AUDIT_WRITE_FAILED", "audit log not written any more for this connection: \(error)")
                return
            }
        }
    }

    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}

/// The writer queue's bound for one connection: `add` waits while the connection is more than
/// `limit` bytes ahead of the writer (backpressure instead of loss or unbounded memory).
private final class PendingBytes: @unchecked Sendable {
    private let condition = NSCondition()
    private var bytes = 0
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    func add(_ count: Int) {
        condition.lock()
        while bytes > limit { condition.wait() }
        bytes += count
        condition.unlock()
    }

    func remove(_ count: Int) {
        condition.lock()
        bytes -= count
        if bytes <= limit { condition.broadcast() }
        condition.unlock()
    }
}
