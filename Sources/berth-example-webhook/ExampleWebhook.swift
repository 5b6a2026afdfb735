import ArgumentParser
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small authentication and configuration webhook server speaking Berth's (and
/// ContainerSSH's) webhook protocol, with users from a YAML file. Meant for demos and tests.
@main
struct ExampleWebhook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth-example-webhook",
        abstract: "Example auth + config webhook server for Berth (users from a YAML file).",
        discussion: "Answers POST …/password, …/pubkey, …/authz and …/config (routed by the last path segment)."
    )

    @Option(help: "Address to listen on (HOST:PORT; port 0 picks a free one).")
    var listen = "127.0.0.1:8080"

    @Option(
        help:
            "Users file (YAML): users: [{username, password, authorizedKeys, authenticatedUsername, metadata, environment, sensitive (names sent marked sensitive), files, config}]."
    )
    var users: String?

    @Option(name: .customLong("log-requests"), help: "Append every request as a JSON line {\"path\", \"body\"} to this file.")
    var logRequests: String?

    @Flag(name: .customLong("allow-all"), help: "Accept every password and authorize every user (demo only).")
    var allowAll = false

    func run() async throws {
        let directory = try users.map(UserDirectory.load) ?? UserDirectory(users: [:])
        let recorder = try logRequests.map(RequestRecorder.init)
        let answers = WebhookAnswers(directory: directory, allowAll: allowAll)
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw ValidationError("--listen must be HOST:PORT")
        }
        let host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(WebhookHTTPHandler(answers: answers, recorder: recorder))
                }
            }
            .bind(host: host, port: port).get()
        FileHandle.standardOutput.write(Data("listening on \(host):\(channel.localAddress?.port ?? port)\n".utf8))
        let (stops, stop) = AsyncStream.makeStream(of: Void.self)
        let sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop.yield() }
            source.resume()
            return source
        }
        for await _ in stops { break }
        sources.forEach { $0.cancel() }
        try? await channel.close()
    }
}
