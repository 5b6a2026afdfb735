import ArgumentParser
import BerthAudit
import Foundation

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Work with audit logs.",
        subcommands: [AuditDecode.self]
    )
}

struct AuditDecode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Print a binary audit log as JSON lines or as asciicast recordings, and recover SFTP uploads.",
        discussion: """
            Reads Berth's and ContainerSSH's binary format (version 2), also logs cut short by a crash.
            jsonl: one message per line (byte strings base64, typeName added).
            asciinema: the session channels as asciicast v2; with several sessions use --channel, or
            --output DIR to write one FILE-CHANNEL.cast each.
            --extract-sftp DIR: write the files uploaded over SFTP (needs stdin and stdout interception).
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case jsonl, asciinema
    }

    @Argument(help: "The audit log file.")
    var file: String

    @Option(name: .long, help: "Output format: jsonl or asciinema.")
    var format: Format = .jsonl

    @Option(name: .long, help: "Only this channel (asciinema).")
    var channel: UInt64?

    @Option(name: .long, help: "Write asciicasts into this directory instead of stdout.")
    var output: String?

    @Option(name: .customLong("extract-sftp"), help: "Write files uploaded over SFTP into this directory.")
    var extractSFTP: String?

    @Option(name: .customLong("max-bytes"), help: "Refuse a log that decompresses to more than this many bytes.")
    var maxBytes: Int = AuditDecoder.defaultMaxBytes

    func run() throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
        let messages: [AuditMessage]
        do {
            messages = try AuditDecoder.decode(Array(data), maxBytes: maxBytes)
        } catch {
            throw ValidationError("\(file): \(error)")
        }
        if let directory = extractSFTP {
            try extract(messages, into: directory)
            return
        }
        switch format {
        case .jsonl:
            for message in messages { print(AuditDecoder.jsonLine(message)) }
        case .asciinema:
            let casts = AuditDecoder.asciicasts(messages).filter { channel == nil || $0.channel == channel }
            guard !casts.isEmpty else { throw ValidationError("no session with a program in \(file)") }
            if let output {
                try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
                let base = URL(fileURLWithPath: file).lastPathComponent
                for cast in casts {
                    let path = "\(output)/\(base)-\(cast.channel).cast"
                    try cast.text.write(toFile: path, atomically: true, encoding: .utf8)
                    print(path)
                }
            } else {
                guard casts.count == 1 else {
                    throw ValidationError(
                        "\(casts.count) sessions (channels \(casts.map { String($0.channel) }.joined(separator: ", "))); choose one with --channel or use --output DIR")
                }
                print(casts[0].text, terminator: "")
            }
        }
    }

    private func extract(_ messages: [AuditMessage], into directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        do {
            let files = try SFTPUploadExtractor.extract(messages)
            for (path, upload) in zip(try SFTPUploadExtractor.writeFiles(files, into: directory), files) {
                print("\(path)\t\(upload.data.count) bytes\tfrom \(upload.path.debugDescription) (channel \(upload.channel))")
            }
            if files.isEmpty { print("no SFTP uploads recorded (stdin and stdout must be intercepted)") }
        } catch let error as SFTPUploadExtractor.Failure {
            throw ValidationError("\(file): \(error)")
        }
    }
}
