#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// berth-agent: the in-container helper, command-line compatible with ContainerSSH's agent so
// images built for either work with both (docs/agent-protocol.md). Standard library and libc only, so it links
// statically and runs in any image.

let arguments = Array(CommandLine.arguments.dropFirst())
guard let mode = arguments.first else {
    AgentError.fail(1, "no mode given", usage: true)
}
let rest = Array(arguments.dropFirst())
switch mode {
case "console": Console.run(rest)
case "signal": SignalMode.run(rest)
case "wait-signal": WaitSignal.run(rest)
case "write-file": WriteFile.run(rest)
case "forward-server": ForwardServer.run(rest)
case "serve": Serve.run(rest)
case "-h", "--help", "help":
    Usage.print(to: STDOUT_FILENO)
    exit(0)
default:
    AgentError.fail(1, "unknown mode \(mode)", usage: true)
}
