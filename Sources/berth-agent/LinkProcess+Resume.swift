#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthAgentProtocol

/// A terminal program that outlives its link (docs/agent-protocol.md, "Resumable sessions"):
/// while detached it keeps running, its output goes into a bounded history (oldest bytes
/// dropped), and after the link's window it is hung up and forgotten. Attaching replays the
/// history, then goes on live.
struct ResumeState {
    /// Sending to `link` is allowed (set after `started` went out on an attach).
    var attached = false
    /// The program's recent output, at most `historyLimit` bytes; its last `unsent` bytes have not
    /// gone to the current link yet.
    var history: [UInt8] = []
    var unsent = 0
    /// A thread is sending pending bytes (one at a time keeps them in order).
    var sending = false
    /// Counts detaches, so an expiry timer of an earlier detach does nothing.
    var generation = 0
    var detachedAt = timespec()
}

extension LinkProcess {
    /// What is replayed on attach; the history itself also holds one read in flight.
    var replayLimit: Int { Int(resume?.bufferBytes ?? 0) }
    private var historyLimit: Int { max(replayLimit, Self.readSize) }

    var isDetached: Bool { monitor.locked { link == nil && !finished } }

    /// Seconds since the detach and before the expiry, for `sessions`.
    func detachedTimes() -> (since: UInt32, left: UInt32) {
        let detachedAt = monitor.locked { resumeState.detachedAt }
        let since = max(0, Self.monotonicSeconds() - detachedAt.tv_sec)
        let window = Int(resume?.windowSeconds ?? 0)
        return (UInt32(clamping: since), UInt32(clamping: max(0, window - since)))
    }

    static func monotonicSeconds() -> Int {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return now.tv_sec
    }

    /// The link is gone or Berth detached the channel: keep running, start the expiry clock.
    func detach() {
        let generation = monitor.locked { () -> Int? in
            guard !finished, link != nil else { return nil }
            link = nil
            onFinished = nil
            resumeState.attached = false
            // Input the old link sent and the program has not read yet is dropped with its credit.
            flow.dropInput()
            resumeState.generation += 1
            clock_gettime(CLOCK_MONOTONIC, &resumeState.detachedAt)
            monitor.broadcast()
            return resumeState.generation
        }
        guard let generation, let resume else { return }
        ProgramTable.shared.detached(self)
        startThread { self.expire(after: Int(resume.windowSeconds), generation: generation) }
    }

    /// Claims a detached program for a new link and channel; false if it is attached or gone.
    /// Output is held until `resumeOutput`, so `started` precedes it.
    func claim(link: LinkOutput, channel: UInt32, attach: AgentAttach, onFinished: @escaping (LinkProcess) -> Void) -> Bool {
        monitor.locked {
            guard !finished, self.link == nil else { return false }
            self.link = link
            self.channel = channel
            self.onFinished = onFinished
            flow.outputCredit = Int(attach.outputWindow)
            resumeState.unsent = min(resumeState.history.count, replayLimit)
            Self.resize(inputFD, attach.terminal)
            return true
        }
    }

    func resumeOutput() {
        monitor.locked {
            resumeState.attached = true
            monitor.broadcast()
        }
        drainPending()
    }

    /// SIGHUP to the program's process group when the window ends still detached, as a closed
    /// terminal would; SIGKILL when it is still there a few seconds later.
    private func expire(after seconds: Int, generation: Int) {
        var request = timespec(tv_sec: seconds, tv_nsec: 0)
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
        func stillDetached() -> Bool { monitor.locked { !finished && link == nil && resumeState.generation == generation } }
        guard stillDetached() else { return }
        monitor.locked {
            if status == nil {
                _ = kill(-pid, SIGHUP)
                _ = kill(pid, SIGHUP)
            }
        }
        for _ in 0..<50 {
            var tick = timespec(tv_sec: 0, tv_nsec: 100_000_000)
            nanosleep(&tick, nil)
            if monitor.locked({ status != nil || finished }) { break }
        }
        if stillDetached() { close() }
    }

    /// The terminal's output: read within the link's credit while attached, freely into the
    /// history while detached (a detached program never blocks on its terminal). What is pending
    /// (the replay, or output beyond the credit) is sent by whichever thread makes it sendable:
    /// this one, an attach, or more credit, one sender at a time so frames stay in order.
    func pumpResumable(_ fd: Int32) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.readSize, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            drainPending()
            let allowed = monitor.locked { () -> Int in
                // Attached, the next read waits for the pending bytes to go out (so the history
                // never drops bytes the client has not had) and for credit.
                while !finished && resumeState.attached && (flow.outputCredit <= 0 || resumeState.unsent > 0) {
                    if resumeState.unsent > 0 && flow.outputCredit > 0 && !resumeState.sending { return -1 }
                    monitor.wait()
                }
                if finished { return 0 }
                return resumeState.attached ? min(flow.outputCredit, Self.readSize) : Self.readSize
            }
            if allowed < 0 { continue }
            guard allowed > 0 else { break }
            let count = read(fd, buffer.baseAddress, allowed)
            if count < 0 && errno == EINTR { continue }
            // A terminal's master reports EIO once every holder of the terminal has closed it.
            guard count > 0 else { break }
            monitor.locked {
                resumeState.history.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                let excess = resumeState.history.count - historyLimit
                if excess > 0 { resumeState.history.removeFirst(excess) }
                resumeState.unsent = min(resumeState.unsent + count, resumeState.history.count)
            }
        }
        closeDescriptor(fd)
        // The exit follows all output, if someone is attached to receive it.
        while true {
            drainPending()
            let more = monitor.locked { () -> Bool in
                while !finished && resumeState.attached && (resumeState.sending || (resumeState.unsent > 0 && flow.outputCredit <= 0)) { monitor.wait() }
                return !finished && resumeState.attached && resumeState.unsent > 0
            }
            if !more { break }
        }
        outputClosed()
    }

    /// Sends what is pending within the credit, unless another thread is sending (it then sends
    /// this too, as it goes on until nothing is left).
    func drainPending() {
        while true {
            let chunk = monitor.locked { () -> ([UInt8], LinkOutput, UInt32)? in
                guard !resumeState.sending, !finished, resumeState.attached, let link, resumeState.unsent > 0, flow.outputCredit > 0 else { return nil }
                let count = min(resumeState.unsent, flow.outputCredit, Self.readSize)
                let start = resumeState.history.count - resumeState.unsent
                resumeState.unsent -= count
                flow.outputCredit -= count
                resumeState.sending = true
                return (Array(resumeState.history[start..<(start + count)]), link, channel)
            }
            guard let (bytes, link, channel) = chunk else { return }
            link.send(.output, channel, bytes)
            monitor.locked {
                resumeState.sending = false
                monitor.broadcast()
            }
        }
    }
}
