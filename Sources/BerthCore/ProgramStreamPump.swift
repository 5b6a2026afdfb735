import Logging
import NIOCore

/// The program pump of the path without the agent (`disableAgent`: the program is an exec or the
/// container's own process, its bytes go through the engine's stream). Docker and Kubernetes
/// differ only in the stream: stdin goes into it, its output to the channel, and once the output
/// has ended the exit status (or, when it is unknown, why on stderr and 137), EOF and close.
public enum ProgramStreamPump {
    public enum Piece: Sendable {
        case stdout(ByteBuffer)
        case stderr(ByteBuffer)
        /// Not output: something the stream said about the program (a Kubernetes status).
        case note(String)
    }

    /// `exitCode` gets the stream's last note and answers the exit code, or nil and why it is
    /// unknown. `ended`: the code logged when the stream fails; `unknownExit`: when the exit code
    /// is unknown.
    public static func start<Stream: EngineProgramStream>(
        _ stream: Stream, exitCode: @escaping @Sendable (_ note: String) async -> (code: Int?, problem: String),
        channel: any SessionChannel, tty: Bool, logger: Logger, ended: MessageCode, unknownExit: MessageCode
    ) -> Task<Void, Never> {
        Task {
            let input = Task {
                for await chunk in channel.stdin {
                    do { try await stream.write(chunk) } catch { return }
                }
                // A terminal has no EOF (sshd ignores it on a pty too); half-closing a TTY
                // stream makes Docker drop the program's output.
                if !tty { await stream.closeInput() }
            }
            var note = ""
            do {
                for try await element in stream.output {
                    switch element.pumpPiece {
                    case .stdout(let bytes): try await channel.writeStdout(bytes)
                    case .stderr(let bytes): try await channel.writeStderr(bytes)
                    case .note(let text): note = text
                    }
                }
            } catch  where !Task.isCancelled {
                logger.log(.info, ended, "program stream ended: \(error)", [LogKey.channelID: "\(channel.channelID)"])
            } catch {}
            input.cancel()
            // The channel is already closed (onClose); there is nobody to report to.
            if Task.isCancelled { return }
            let exit = await exitCode(note)
            if exit.code == nil {
                logger.log(.warning, unknownExit, "no exit code: \(exit.problem)", [LogKey.channelID: "\(channel.channelID)"])
                try? await channel.writeStderr(ByteBuffer(string: UserNotice.line("the program's exit code is unknown", code: unknownExit, logger: logger)))
            }
            await channel.sendExitStatus(UInt32(truncatingIfNeeded: exit.code ?? 137))
            await channel.closeWrite()
            await channel.close()
        }
    }
}

/// An element of a backend's program stream, as the pump sees it.
public protocol ProgramStreamOutput: Sendable {
    var pumpPiece: ProgramStreamPump.Piece { get }
}

/// An engine's exec or attach stream (Docker's hijacked connection, a Kubernetes WebSocket), as
/// the pump and the agent's exec link drive it; each backend only frames the bytes its own way
/// (docs/architecture.md, "Modules").
public protocol EngineProgramStream: Sendable {
    associatedtype Output: AsyncSequence & Sendable where Output.Element: ProgramStreamOutput
    var output: Output { get }
    func write(_ data: ByteBuffer) async throws
    /// Stdin EOF for the program, after everything written before; output keeps flowing. A
    /// Kubernetes v4 stream has no way to say it and does nothing.
    func closeInput() async
    func close() async
}
