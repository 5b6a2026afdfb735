import BerthConfig
import BerthCore
import Foundation
import Logging

/// The network user containers join when the operator names none (`execution.userNetwork`): a
/// bridge of Berth's own with traffic between containers off, so one user cannot reach another's
/// services, and (local engine, `userNetworkFirewall`) firewall rules so that nothing on it
/// reaches the host itself (Berth's metrics, the engine, anything listening there) or link-local
/// addresses (cloud metadata at 169.254.169.254). docs/security.md, "Docker network".
enum DockerUserNetwork {
    static let label = "berth.network"

    /// The network containers of `execution` join, or nil when the operator chose their own
    /// (a `NetworkMode` in `host`, any `network` settings) or turned it off.
    static func name(for execution: DockerExecutionConfig) -> String? {
        guard !execution.userNetwork.isEmpty else { return nil }
        if case .object(let fields) = execution.network, !fields.isEmpty { return nil }
        if case .object(let fields) = execution.host, fields.contains(where: { $0.key.lowercased() == "networkmode" }) { return nil }
        return execution.userNetwork
    }

    /// Creates the network if it is missing; returns its bridge interface and whether traffic
    /// between its containers is off.
    static func ensure(_ name: String, client: DockerClient) async throws -> (bridge: String, isolated: Bool) {
        let path = "/networks/\(DockerClient.escape(name))"
        let network: ConfigValue
        do {
            network = try await client.call(.GET, path, what: "inspect network \(name)")
        } catch let error as DockerError where error.status == 404 {
            let body: ConfigValue = .object([
                ("Name", .string(name)), ("Driver", .string("bridge")), ("CheckDuplicate", .bool(true)),
                ("Options", .object([("com.docker.network.bridge.enable_icc", .string("false"))])),
                ("Labels", .object([(label, .string("users"))])),
            ])
            do {
                try await client.call(.POST, "/networks/create", body: body, what: "create network \(name)")
            } catch let error as DockerError where error.status == 409 {
                // Another Berth on the engine made it first.
            }
            network = try await client.call(.GET, path, what: "inspect network \(name)")
        }
        let isolated = network["Options"]?["com.docker.network.bridge.enable_icc"] == .string("false")
        if case .string(let bridge)? = network["Options"]?["com.docker.network.bridge.name"] { return (bridge, isolated) }
        guard case .string(let id)? = network["Id"], id.count >= 12 else {
            throw DockerError("DOCKER_NETWORK_FAILED", "the engine's description of network \(name) has no Id")
        }
        return ("br-" + id.prefix(12), isolated)
    }
}

/// iptables rules for the user network's bridge: REJECT (not DROP) so a program gets "connection
/// refused" at once instead of hanging. Each rule is checked (`-C`) before it is inserted, so
/// restarts do not pile them up; they stay when Berth stops (the network stays too).
enum DockerFirewall {
    static func rules(bridge: String) -> [(chain: String, match: [String])] {
        [
            ("INPUT", ["-i", bridge, "-j", "REJECT"]),
            ("DOCKER-USER", ["-i", bridge, "-d", "169.254.0.0/16", "-j", "REJECT"]),
        ]
    }

    /// On a thread of its own: iptables waits for the xtables lock, which must not hold up a
    /// thread of Swift's cooperative pool.
    static func apply(bridge: String) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
            DispatchQueue.global().async { done.resume(with: Result { try applyNow(bridge: bridge) }) }
        }
    }

    private static func applyNow(bridge: String) throws {
        guard let iptables = ["/usr/sbin/iptables", "/sbin/iptables", "/usr/bin/iptables"].first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw DockerError("DOCKER_FIREWALL_FAILED", "iptables is not installed")
        }
        for rule in rules(bridge: bridge) {
            if (try? run(iptables, ["-w", "-C", rule.chain] + rule.match)) != nil { continue }
            try run(iptables, ["-w", "-I", rule.chain, "1"] + rule.match)
        }
    }

    private static func run(_ program: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw DockerError("DOCKER_FIREWALL_FAILED", "iptables \(arguments.joined(separator: " ")): \(text.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}
