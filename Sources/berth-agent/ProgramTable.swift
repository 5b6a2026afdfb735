#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthAgentProtocol

/// The agent process's programs, whichever link they belong to (or none, while detached): the
/// reaper finds them by PID, and a process whose link has ended lives on while any is left.
final class ProgramTable: @unchecked Sendable {
    static let shared = ProgramTable()

    let monitor = Monitor()
    // Guarded by `monitor`.
    private var byPID: [pid_t: LinkProcess] = [:]
    private var spawned = 0

    /// Runs `spawn` under the lock that orders spawns before the reaper's dispatch of the same PID.
    func spawn(_ spawn: () throws -> LinkProcess) rethrows -> LinkProcess {
        try monitor.locked {
            let process = try spawn()
            byPID[process.pid] = process
            spawned += 1
            monitor.broadcast()
            return process
        }
    }

    func finished(_ process: LinkProcess) {
        monitor.locked {
            if byPID[process.pid] === process { byPID.removeValue(forKey: process.pid) }
            monitor.broadcast()
        }
    }

    /// A detached program must be reachable from the next link, which is another agent process
    /// when every link is its own `serve --stdio`.
    func detached(_ process: LinkProcess) {
        ResumeHolder.shared.listen()
    }

    /// This process's detached programs of `owner`, oldest PID first.
    func detachedPrograms(of owner: String) -> [LinkProcess] {
        let all = monitor.locked { Array(byPID.values) }
        return all.filter { $0.resume?.owner == owner && $0.isDetached }.sorted { $0.pid < $1.pid }
    }

    func program(_ pid: pid_t) -> LinkProcess? { monitor.locked { byPID[pid] } }

    /// The main link has ended: stay while detached programs live (their links are gone, so they
    /// are all detached or attached through other agents), else exit now.
    func linkEnded() -> Never {
        monitor.locked {
            while !byPID.isEmpty { monitor.wait() }
        }
        ResumeHolder.shared.stop()
        exit(0)
    }

    /// The container is stopping: every program goes.
    func killAll() {
        for process in monitor.locked({ Array(byPID.values) }) { process.close() }
    }

    /// Collects every ended child: its own programs' statuses go to them; orphans (as PID 1)
    /// are just reaped.
    func reap() {
        while true {
            let generation = monitor.locked { spawned }
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid > 0 {
                monitor.locked { byPID[pid] }?.exited(status)
                continue
            }
            if errno == EINTR { continue }
            // No children: sleep until the next spawn.
            monitor.locked { while spawned == generation { monitor.wait() } }
        }
    }
}
