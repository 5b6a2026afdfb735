#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `wait-signal`: the idle PID 1 of connection-mode containers. The awaited signals and SIGCHLD
/// are blocked and taken with sigwait (blocked signals reach PID 1 even without a handler);
/// every SIGCHLD reaps all ended children, so orphans of exec'd programs, which are reparented
/// to PID 1, don't linger as zombies.
enum WaitSignal {
    struct Options {
        var signals: [Int32] = []
        var message: String?

        static func parse(_ arguments: [String]) throws(UsageError) -> Options {
            var options = Options()
            var cursor = ArgumentCursor(arguments)
            while let option = cursor.next() {
                switch option {
                case "--signal": options.signals.append(try SignalNames.number(try cursor.value(of: option)))
                case "--message": options.message = try cursor.value(of: option)
                default: throw UsageError("unknown wait-signal option \(option)")
                }
            }
            guard !options.signals.isEmpty else { throw UsageError("wait-signal needs at least one --signal") }
            return options
        }
    }

    static func run(_ arguments: [String]) -> Never {
        let options = parseOrExit { () throws(UsageError) in try Options.parse(arguments) }
        var set = sigset_t()
        sigemptyset(&set)
        for signal in options.signals + [SIGCHLD] { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        // A shell may start us with INT/QUIT ignored; make the awaited ones count regardless.
        for awaited in options.signals where awaited != SIGKILL { signal(awaited, SIG_DFL) }
        reapChildren()  // children that ended before SIGCHLD was blocked
        while true {
            var received: Int32 = 0
            guard sigwait(&set, &received) == 0 else { continue }
            if received == SIGCHLD {
                reapChildren()
                continue
            }
            // Exactly TEXT, no newline: ContainerSSH's agent writes it so.
            if let message = options.message { _ = writeAll(STDOUT_FILENO, Array(message.utf8)) }
            exit(0)
        }
    }

    private static func reapChildren() {
        var status: Int32 = 0
        while true {
            let pid = waitpid(-1, &status, WNOHANG)
            if pid > 0 || (pid < 0 && errno == EINTR) { continue }
            return
        }
    }
}
