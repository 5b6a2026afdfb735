import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// Where the engine listens: `unix:///var/run/docker.sock` or `tcp://host:port` (TLS when
/// certificates are given).
public struct DockerEndpoint: Sendable, CustomStringConvertible {
    enum Address: Sendable {
        case unix(String)
        case tcp(host: String, port: Int)
    }

    let address: Address
    let tls: TLSConfiguration?
    public let description: String

    public init(host: String = "unix:///var/run/docker.sock", cacert: String = "", cert: String = "", key: String = "") throws {
        description = host
        if host.hasPrefix("unix://") {
            address = .unix(String(host.dropFirst("unix://".count)))
            tls = nil
            return
        }
        guard host.hasPrefix("tcp://"), let colon = host.lastIndex(of: ":"), let port = Int(host[host.index(after: colon)...]) else {
            throw DockerError("DOCKER_CONFIG_ERROR", "docker.connection.host \"\(host)\" must be unix:///path or tcp://host:port")
        }
        address = .tcp(host: String(host[host.index(host.startIndex, offsetBy: 6)..<colon]), port: port)
        if cacert.isEmpty && cert.isEmpty {
            tls = nil
            return
        }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if !cacert.isEmpty { configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(try Self.pem(cacert).utf8))) }
        if !cert.isEmpty {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(try Self.pem(cert).utf8)).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(try Self.pem(key).utf8), format: .pem))
        }
        tls = configuration
    }

    private static func pem(_ value: String) throws -> String {
        value.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("-----") ? value : try String(contentsOfFile: value, encoding: .utf8)
    }

    /// A fresh connection; the engine API is cheap to connect to, and upgraded streams need
    /// a connection of their own anyway.
    func connect(group: EventLoopGroup, timeout: TimeAmount) async throws -> Channel {
        let context = try tls.map { try NIOSSLContext(configuration: $0) }
        let serverHostname: String? = { if case .tcp(let host, _) = address { return host } else { return nil } }()
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: serverHostname))
                    }
                }
            }
        do {
            switch address {
            case .unix(let path): return try await bootstrap.connect(unixDomainSocketPath: path).get()
            case .tcp(let host, let port): return try await bootstrap.connect(host: host, port: port).get()
            }
        } catch {
            throw DockerError.unavailable(description, error)
        }
    }
}
