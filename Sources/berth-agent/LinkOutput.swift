#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthAgentProtocol

/// The agent's side of the link for writing: whole frames, one writer at a time. A failed write
/// means Berth is gone; `onGone` runs once (it ends the agent).
final class LinkOutput: @unchecked Sendable {
    private let fd: Int32
    private let lock = Lock()
    private let onGone: () -> Void

    init(fd: Int32, onGone: @escaping () -> Void) {
        self.fd = fd
        self.onGone = onGone
    }

    func send(_ type: AgentFrameType, _ channel: UInt32, _ payload: [UInt8] = []) {
        payload.withUnsafeBytes { send(type, channel, $0) }
    }

    /// Header and payload go out in one writev, without copying the payload.
    func send(_ type: AgentFrameType, _ channel: UInt32, _ payload: UnsafeRawBufferPointer) {
        var header = [UInt8](repeating: 0, count: AgentFrameHeader.size)
        header.withUnsafeMutableBytes { AgentFrameHeader(type: type, channel: channel, payloadLength: payload.count).write(to: $0) }
        let ok = lock.locked { () -> Bool in
            header.withUnsafeMutableBytes { head in
                writeVector(UnsafeMutableRawBufferPointer(head), payload)
            }
        }
        if !ok { onGone() }
    }

    /// A frame whose header space (the first 9 bytes of `frame`) is filled in here.
    func send(_ type: AgentFrameType, _ channel: UInt32, frame: UnsafeMutableRawBufferPointer) {
        AgentFrameHeader(type: type, channel: channel, payloadLength: frame.count - AgentFrameHeader.size).write(to: frame)
        let ok = lock.locked { writeVector(frame, UnsafeRawBufferPointer(start: nil, count: 0)) }
        if !ok { onGone() }
    }

    private func writeVector(_ first: UnsafeMutableRawBufferPointer, _ second: UnsafeRawBufferPointer) -> Bool {
        var firstOffset = 0
        var secondOffset = 0
        while firstOffset < first.count || secondOffset < second.count {
            var vectors = [
                iovec(iov_base: first.baseAddress.map { $0 + firstOffset }, iov_len: first.count - firstOffset),
                iovec(iov_base: second.baseAddress.map { UnsafeMutableRawPointer(mutating: $0 + secondOffset) }, iov_len: second.count - secondOffset),
            ]
            let written = vectors.withUnsafeMutableBufferPointer { writev(fd, $0.baseAddress, second.count > 0 ? 2 : 1) }
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            let fromFirst = min(written, first.count - firstOffset)
            firstOffset += fromFirst
            secondOffset += written - fromFirst
        }
        return true
    }
}
