#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthAgentProtocol

/// Direct pipes (docs/agent-protocol.md, "Direct pipes"): Berth takes the parent's ends of a
/// program's pipes out of this process, and the agent only reaps the program and reports its exit.
extension LinkProcess {
    /// The parent's pipe ends to offer in `started`; nil for a terminal (which stays the agent's:
    /// it resizes it and may keep it across links) or when a pipe cannot be described.
    func offerDirectPipes() -> AgentDirectPipes? {
        guard !tty, outputFDs.count == 2 else { return nil }
        func end(_ fd: Int32) -> AgentPipeEnd? {
            var info = stat()
            guard fstat(fd, &info) == 0 else { return nil }
            return AgentPipeEnd(descriptor: UInt32(bitPattern: fd), inode: UInt64(info.st_ino))
        }
        guard let stdin = end(inputFD), let stdout = end(outputFDs[0].0), let stderr = end(outputFDs[1].0) else { return nil }
        monitor.locked { directOffered = true }
        return AgentDirectPipes(stdin: stdin, stdout: stdout, stderr: stderr)
    }

    /// Berth's answer: it holds the pipes now (the agent lets go of its ends and waits only for
    /// the exit), only stdin (the agent moves the output as usual), or none (the bytes move over
    /// the link as usual).
    func answerDirectPipes(_ answer: AgentDirectAnswer) {
        guard takeOffer() else { return }
        switch answer {
        case .declined:
            run()
        case .stdinTaken:
            closeDescriptor(inputFD)
            run(input: false)
        case .taken:
            closeParentEnds()
            monitor.locked { openOutputs = 0 }
            finishIfDone()
        }
    }

    /// The channel closed before Berth answered: the ends would otherwise stay open for good.
    func dropUnansweredPipes() {
        if takeOffer() { closeParentEnds() }
    }

    private func takeOffer() -> Bool {
        monitor.locked { () -> Bool in
            defer { directOffered = false }
            return directOffered
        }
    }

    private func closeParentEnds() {
        closeDescriptor(inputFD)
        for (fd, _) in outputFDs { closeDescriptor(fd) }
    }
}
