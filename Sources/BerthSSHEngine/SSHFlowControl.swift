import BerthSSHWire
import NIOCore

/// Our receive window for one channel (RFC 4254 §5.2). The invariant is
/// `remaining + unconsumed + consumedNotAdjusted == size`: the peer can never have more than
/// `size` bytes outstanding, and we reopen the window in steps of at least half its size so
/// WINDOW_ADJUST messages stay rare.
struct SSHInboundWindow: Equatable {
    let size: UInt32
    private(set) var remaining: UInt32
    private(set) var unconsumed: UInt32 = 0
    private(set) var consumedNotAdjusted: UInt32 = 0

    init(size: UInt32) {
        self.size = size
        remaining = size
    }

    mutating func receive(_ bytes: Int) throws {
        guard bytes <= Int(remaining) else {
            throw SSHProtocolError(
                "SSH_CHANNEL_WINDOW_EXCEEDED",
                "peer sent \(bytes) bytes of channel data with only \(remaining) left in the window")
        }
        remaining -= UInt32(bytes)
        unconsumed += UInt32(bytes)
    }

    /// Returns the WINDOW_ADJUST amount to send, if it is time to send one.
    mutating func consume(_ bytes: Int) -> UInt32? {
        guard bytes > 0 else { return nil }
        let taken = UInt32(min(bytes, Int(unconsumed)))
        unconsumed -= taken
        consumedNotAdjusted += taken
        guard consumedNotAdjusted > 0, consumedNotAdjusted >= size / 2 else { return nil }
        let adjust = consumedNotAdjusted
        remaining += adjust
        consumedNotAdjusted = 0
        return adjust
    }
}

/// Answers that must go out in the order their requests came in, though they may be decided in
/// any order (RFC 4254 §4 and §5.4).
struct SSHOrderedReplies<Answer> {
    private var entries = CircularBuffer<(id: UInt64, answer: Answer?)>()

    var count: Int { entries.count }

    mutating func append(id: UInt64) {
        entries.append((id, nil))
    }

    /// False if `id` is not waiting (already answered, or never asked).
    @discardableResult
    mutating func answer(id: UInt64, with answer: Answer) -> Bool {
        guard let index = entries.firstIndex(where: { $0.id == id && $0.answer == nil }) else { return false }
        entries[index].answer = answer
        return true
    }

    /// The next answer that may be sent now, in request order.
    mutating func popReady() -> (id: UInt64, answer: Answer)? {
        guard let first = entries.first, let answer = first.answer else { return nil }
        entries.removeFirst()
        return (first.id, answer)
    }

    mutating func removeAll() { entries.removeAll() }
}

/// What a channel sends, in the order it was asked to: data waits for the peer's window, and a
/// request, EOF or CLOSE queued after data waits for that data to go first.
enum SSHChannelOutboundItem {
    case data(ByteBuffer, extendedType: UInt32?, promise: EventLoopPromise<Void>?)
    case request(type: String, wantReply: Bool, payload: ByteBuffer, promise: EventLoopPromise<Bool>?)
    case eof(EventLoopPromise<Void>?)
    case close(EventLoopPromise<Void>?)
}

/// The per-channel outbound queue with its byte count (for `isWritable`).
struct SSHChannelOutboundQueue {
    private(set) var items = CircularBuffer<SSHChannelOutboundItem>()
    private(set) var queuedBytes = 0

    var isEmpty: Bool { items.isEmpty }
    var first: SSHChannelOutboundItem? { items.first }

    mutating func append(_ item: SSHChannelOutboundItem) {
        if case .data(let data, _, _) = item { queuedBytes += data.readableBytes }
        items.append(item)
    }

    /// Up to `limit` bytes of the data at the head of the queue for one packet. Small writes in a
    /// row (a program's output arrives in pipe-sized pieces) share a packet instead of paying for
    /// one each. Promises of writes taken completely are appended to `completed`.
    mutating func takeData(limit: Int, completed: inout [EventLoopPromise<Void>]) -> (data: ByteBuffer, extendedType: UInt32?)? {
        guard case .data(var data, let extendedType, let promise) = items.first else { return nil }
        guard data.readableBytes < limit, items.count > 1, case .data(_, extendedType, _) = items[items.index(after: items.startIndex)] else {
            let slice = data.readSlice(length: min(limit, data.readableBytes))!
            queuedBytes -= slice.readableBytes
            if data.readableBytes == 0 {
                items.removeFirst()
                if let promise { completed.append(promise) }
            } else {
                items[items.startIndex] = .data(data, extendedType: extendedType, promise: promise)
            }
            return (slice, extendedType)
        }
        var packet = ByteBufferAllocator().buffer(capacity: min(limit, queuedBytes))
        while packet.readableBytes < limit, case .data(var next, extendedType, let promise) = items.first {
            var slice = next.readSlice(length: min(limit - packet.readableBytes, next.readableBytes))!
            queuedBytes -= slice.readableBytes
            packet.writeBuffer(&slice)
            if next.readableBytes > 0 {
                items[items.startIndex] = .data(next, extendedType: extendedType, promise: promise)
                break
            }
            items.removeFirst()
            if let promise { completed.append(promise) }
        }
        return (packet, extendedType)
    }

    mutating func removeFirst() -> SSHChannelOutboundItem {
        let item = items.removeFirst()
        if case .data(let data, _, _) = item { queuedBytes -= data.readableBytes }
        return item
    }

    mutating func removeAll() -> [SSHChannelOutboundItem] {
        let all = Array(items)
        items.removeAll()
        queuedBytes = 0
        return all
    }
}
