/// The most recent `capacity` bytes of a session's output. Storage grows with the output up to
/// `capacity` and is then overwritten in place, so a session costs at most `capacity` bytes
/// however much it writes, and each byte is copied once.
struct OutputRing {
    let capacity: Int
    private var storage: [UInt8] = []
    /// Where the oldest byte is once `storage` is full.
    private var start = 0
    private(set) var total: UInt64 = 0

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    /// Earlier output is no longer all there.
    var truncated: Bool { total > UInt64(capacity) }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        total += UInt64(bytes.count)
        var input = bytes[...]
        if input.count >= capacity {
            storage = Array(input.suffix(capacity))
            start = 0
            return
        }
        if storage.count < capacity {
            let taken = min(capacity - storage.count, input.count)
            storage.append(contentsOf: input.prefix(taken))
            input = input.dropFirst(taken)
        }
        while !input.isEmpty {
            let taken = min(capacity - start, input.count)
            storage.withUnsafeMutableBytes { target in
                target.baseAddress!.advanced(by: start).copyMemory(from: UnsafeRawPointer(bytes.baseAddress!.advanced(by: input.startIndex)), byteCount: taken)
            }
            input = input.dropFirst(taken)
            start = (start + taken) % capacity
        }
    }

    /// The last `count` bytes (all kept bytes by default), oldest first.
    func suffix(_ count: Int? = nil) -> [UInt8] {
        let ordered = storage.count < capacity || start == 0 ? storage : Array(storage[start...] + storage[..<start])
        guard let count, count < ordered.count else { return ordered }
        return Array(ordered.suffix(count))
    }
}
