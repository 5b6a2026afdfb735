import BerthAgentLink
import BerthAgentProtocol
import BerthConfig
import BerthCore
import Foundation
import Logging
import NIOCore

/// A started container and the link to its agent (nil without the agent).
struct DockerLinkedContainer: Sendable {
    let id: String
    let link: AgentLink?
    /// The host directory of the link socket, removed with the container.
    let linkDirectory: String?
}

extension DockerBackend {
    /// The socket link is used for a local engine when the agent is the container's PID 1
    /// (the default idle command) and Berth can make the socket directory.
    private func socketLinkDirectory() -> String? {
        let execution = config.execution
        // A socket agent ends with its one link (docs/agent-protocol.md); a persistent container
        // must outlive Berth, so it keeps the idle command and is reached by exec.
        guard !execution.disableAgent, execution.mode != .persistent, config.connection.host.hasPrefix("unix://"), !execution.agentSocketRoot.isEmpty,
            execution.idleCommand == DockerExecutionConfig().idleCommand
        else { return nil }
        let root = execution.agentSocketRoot
        let directory = root + "/" + randomHex(12)
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            return directory
        } catch {
            logger.log(.warning, "AGENT_SOCKET_DIRECTORY_FAILED", "cannot make the agent link directory under \(root), linking through docker exec: \(error)")
            return nil
        }
    }

    /// Creates and starts a container whose agent is the data plane and links to it.
    /// `created` learns the ID as soon as it exists, so a failed start still removes it.
    func startLinkedContainer(
        name: String?, labels: [(String, String)], environment: [String: String], logger: Logger,
        volume: (name: String, target: String)? = nil,
        created: @Sendable (String) -> Void
    ) async throws -> DockerLinkedContainer {
        try await ensureImage()
        let network = try await userNetwork()
        let execution = config.execution
        let directory = socketLinkDirectory()
        let secret = randomHex(32)
        var command = execution.idleCommand
        var environment = environment
        var labels = labels
        if let directory {
            command = [execution.agentPath, "serve", "--socket", DockerContainerSpec.linkMountPoint + "/agent.sock", "--signal", "INT", "--signal", "TERM"]
            environment[AgentHello.secretVariable] = secret
            labels.append((DockerContainerSpec.linkDirectoryLabel, directory))
        }
        let body = DockerContainerSpec.body(
            execution: execution, labels: labels, command: command, environment: environment,
            tty: false, interactive: false, linkDirectory: directory, network: network, volume: volume)
        let id: String
        do {
            id = try await client.createContainer(name: name, body: body)
        } catch {
            if let directory { Self.removeDirectory(directory) }
            throw error
        }
        BerthMetrics.containerStarted()
        created(id)
        try await withTimeout(config.timeouts.containerStart, "starting the container") { try await self.client.startContainer(id) }
        guard !execution.disableAgent else { return DockerLinkedContainer(id: id, link: nil, linkDirectory: directory) }
        let link = try await openLink(container: id, socketDirectory: directory, secret: secret, logger: logger)
        return DockerLinkedContainer(id: id, link: link, linkDirectory: directory)
    }

    /// The fastest link that works: the bind-mounted socket, else `agent serve --stdio` by exec.
    func openLink(container: String, socketDirectory: String?, secret: String, logger: Logger) async throws -> AgentLink {
        var log = logger
        log[metadataKey: "containerId"] = "\(container)"
        if let socketDirectory {
            let started = ContinuousClock.now
            do {
                let link = try await AgentLink.connectSocket(
                    path: socketDirectory + "/agent.sock", secret: Array(secret.utf8),
                    timeout: min(config.timeouts.containerStart.duration, .seconds(10)), logger: log)
                let pipes = link.directPipes ? "direct" : "link"
                log.log(.debug, "AGENT_LINK_UP", "linked to the agent", ["link": "socket", "pipes": "\(pipes)", "took": "\(ContinuousClock.now - started)"])
                return link
            } catch {
                log.log(.warning, "AGENT_SOCKET_FAILED", "the agent's socket did not work, linking through docker exec: \(error)")
            }
        }
        let exec = try await client.createExec(containerID: container, command: [config.execution.agentPath, "serve", "--stdio"], tty: false)
        let stream = try await client.startExec(exec, tty: false)
        // The exec's own agent needs no secret: only someone who can exec reaches it.
        return try await AgentLink.overExec(stream, helloTimeout: config.timeouts.commandStart.duration, logger: log)
    }

    /// Removes a container (retrying until `containerStop` runs out) and its link directory.
    func removeLinked(_ id: String, linkDirectory: String?, logger: Logger) async {
        await removeRetrying(
            "container", ["containerId": "\(id)"], limit: config.timeouts.containerStop.duration, pause: .milliseconds(500),
            removed: "DOCKER_CONTAINER_REMOVED", failed: "DOCKER_CONTAINER_REMOVE_FAILED", logger: logger
        ) { [client] in try await client.removeContainer(id) }
        if let linkDirectory { Self.removeDirectory(linkDirectory) }
    }

    /// Only directories Berth made under the configured root.
    static func removeDirectory(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }
}
