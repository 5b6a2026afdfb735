import BerthAgentLink
import BerthConfig
import BerthCore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// Persistent mode's containers: one per user, named after them (`UserPodName`), shared by all
/// the user's connections and kept between them. One registry per process, since backends made
/// for a webhook's per-user configuration share the users' containers with the server-wide one.
///
/// - Concurrent first logins of one user wait for the one start in progress; several Berths on
///   one engine meet at the engine's name conflict (409) and use the container the winner made.
/// - A container with no connection for `persistence.idleTimeout`, or older than `maxLifetime`
///   (its engine creation time, so the age survives restarts), is removed. After a restart the
///   idle clock of a container found without connections starts again: never earlier than the
///   operator asked (docs/architecture.md, "Ownership and clean-up").
actor DockerPersistentRegistry {
    static let shared = DockerPersistentRegistry()

    struct Entry {
        var id: String
        var link: AgentLink?
        let backend: DockerBackend
        var created: Date
        var connections: [ObjectIdentifier: DockerConnection] = [:]
        var idleSince = ContinuousClock.now
    }

    private var entries: [String: Entry] = [:]
    private var opening: [String: Task<DockerBackend.PersistentContainer, Error>] = [:]
    private var reaper: Task<Void, Never>?
    private var persistence = PersistenceConfig()

    /// The container of the connection's user, started or found, with the link to its agent.
    func attach(_ connection: DockerConnection) async throws -> (id: String, link: AgentLink) {
        let backend = connection.backend
        let name = backend.persistentName(for: connection.metadata.effectiveUsername)
        while true {
            if var entry = entries[name], let link = entry.link, link.closedReason == nil {
                entry.connections[ObjectIdentifier(connection)] = connection
                entries[name] = entry
                return (entry.id, link)
            }
            // Everyone waiting for a start uses its result directly: a waiter that went round
            // the loop again before the starter got back onto the actor would spin on it.
            let task: Task<DockerBackend.PersistentContainer, Error>
            if let running = opening[name] {
                task = running
            } else {
                let known = entries[name]?.id
                task = Task { try await backend.openPersistent(name: name, known: known, metadata: connection.metadata, logger: connection.logger) }
                opening[name] = task
            }
            let opened: DockerBackend.PersistentContainer
            do {
                opened = try await task.value
            } catch {
                if opening[name] == task { opening[name] = nil }
                throw error
            }
            if opening[name] == task { opening[name] = nil }
            var entry = entries[name] ?? Entry(id: opened.id, link: nil, backend: backend, created: opened.created)
            if entry.link !== opened.link {
                entry.id = opened.id
                entry.link = opened.link
                entry.created = opened.created
                entries[name] = entry
            }
            entry.connections[ObjectIdentifier(connection)] = connection
            entries[name] = entry
            ensureReaper()
            return (opened.id, opened.link)
        }
    }

    /// The connection is gone; the container stays, its idle clock starts with its last connection.
    func detach(_ connection: DockerConnection) {
        for (name, var entry) in entries where entry.connections.removeValue(forKey: ObjectIdentifier(connection)) != nil {
            if entry.connections.isEmpty { entry.idleSince = .now }
            entries[name] = entry
        }
    }

    /// Persistent containers found at start-up (made by this server, or by one that is no longer
    /// alive) come under this server's timers, with their idle clock started now.
    func adopt(_ found: [(name: String, id: String, created: Date)], backend: DockerBackend, persistence: PersistenceConfig) {
        self.persistence = persistence
        for container in found where entries[container.name] == nil {
            entries[container.name] = Entry(id: container.id, link: nil, backend: backend, created: container.created)
        }
        ensureReaper()
    }

    func configure(_ persistence: PersistenceConfig) {
        self.persistence = persistence
    }

    var count: Int { entries.count }

    private func ensureReaper() {
        guard reaper == nil else { return }
        let interval = Self.interval(persistence)
        reaper = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await self?.reap()
            }
        }
    }

    /// Often enough that a container is removed soon after its time, rarely enough to cost nothing.
    static func interval(_ persistence: PersistenceConfig) -> Duration {
        let limits = [persistence.idleTimeout, persistence.maxLifetime].filter { $0 > .zero }.map(\.duration)
        return max(.milliseconds(250), min(.seconds(30), (limits.min() ?? .seconds(120)) / 4))
    }

    private func reap() async {
        let now = ContinuousClock.now
        let wallNow = Date()
        var due: [(name: String, entry: Entry, reason: String)] = []
        for (name, entry) in entries where opening[name] == nil {
            if persistence.maxLifetime > .zero, wallNow.timeIntervalSince(entry.created) >= persistence.maxLifetime.timeInterval {
                due.append((name, entry, "maxLifetime"))
            } else if persistence.idleTimeout > .zero, entry.connections.isEmpty, now - entry.idleSince >= persistence.idleTimeout.duration {
                due.append((name, entry, "idleTimeout"))
            }
        }
        for (name, entry, reason) in due {
            entries[name] = nil
            await entry.backend.removePersistent(name: name, id: entry.id, link: entry.link, reason: reason, connections: Array(entry.connections.values))
        }
    }
}

extension DockerBackend {
    struct PersistentContainer: Sendable {
        let id: String
        let link: AgentLink
        let created: Date
    }

    func persistentName(for username: String) -> String {
        UserPodName.make(prefix: "berth", username: username)
    }

    func volumeName(for username: String) -> String {
        UserPodName.make(prefix: persistence.volume.namePrefix, username: username)
    }

    /// Where the user's volume goes: the configured path, else the login account's home.
    func volumeTarget(for username: String) -> String {
        if !persistence.volume.mountPath.isEmpty { return persistence.volume.mountPath }
        return config.execution.loginUser.account(for: username)?.home ?? "/root"
    }

    /// Finds the user's container (started again if the engine stopped it) or creates it.
    func openPersistent(name: String, known: String?, metadata: ConnectionMetadata, logger: Logger) async throws -> PersistentContainer {
        let username = metadata.effectiveUsername
        for _ in 0..<3 {
            if let found = try await client.inspectContainer(name) {
                guard found.labels[DockerContainerSpec.persistentLabel] == username else {
                    throw DockerError("DOCKER_PERSISTENT_NAME_TAKEN", "container \(name) exists but is not \(username)'s persistent container")
                }
                if !found.running {
                    do {
                        try await withTimeout(config.timeouts.containerStart, "starting the container") { try await self.client.startContainer(found.id) }
                        logger.log(.notice, "DOCKER_PERSISTENT_RESTARTED", "started the user's stopped persistent container again", ["containerId": "\(found.id)"])
                    } catch {
                        logger.log(
                            .warning, "DOCKER_PERSISTENT_REPLACED", "the user's stopped persistent container does not start, replacing it: \(error)", ["containerId": "\(found.id)"]
                        )
                        await removeLinked(found.id, linkDirectory: nil, logger: logger)
                        continue
                    }
                }
                let link = try await openLink(container: found.id, socketDirectory: nil, secret: "", logger: logger)
                if found.id != known {
                    logger.log(.info, "DOCKER_PERSISTENT_REUSED", "using the user's persistent container", ["containerId": "\(found.id)", "name": "\(name)"])
                }
                return PersistentContainer(id: found.id, link: link, created: found.created)
            }
            var volume: (name: String, target: String)?
            if persistence.volume.enabled {
                let volumeName = volumeName(for: username)
                try await client.createVolume(volumeName, labels: ["berth.username": username])
                volume = (volumeName, volumeTarget(for: username))
            }
            let createdID = NIOLockedValueBox<String?>(nil)
            do {
                let container = try await startLinkedContainer(
                    name: name, labels: DockerContainerSpec.persistentLabels(metadata, owner: identity), environment: [:],
                    logger: logger, volume: volume
                ) { id in createdID.withLockedValue { $0 = id } }
                guard let link = container.link else { throw DockerError("DOCKER_NO_AGENT", "the agent is disabled") }
                logger.log(.info, "DOCKER_PERSISTENT_CREATED", "created the user's persistent container", ["containerId": "\(container.id)", "name": "\(name)"])
                return PersistentContainer(id: container.id, link: link, created: Date())
            } catch let error as DockerError where error.status == 409 && createdID.withLockedValue({ $0 }) == nil {
                // Another Berth on this engine created it a moment ago: use theirs.
                continue
            } catch {
                if let id = createdID.withLockedValue({ $0 }) { await removeLinked(id, linkDirectory: nil, logger: logger) }
                throw error
            }
        }
        throw DockerError("DOCKER_PERSISTENT_UNAVAILABLE", "could not find or create persistent container \(name)")
    }

    /// Removes a persistent container whose time is up; connections still on it are told why.
    func removePersistent(name: String, id: String, link: AgentLink?, reason: String, connections: [DockerConnection]) async {
        for connection in connections { await connection.persistentContainerExpired() }
        await link?.close()
        await removeLinked(id, linkDirectory: nil, logger: logger)
        logger.log(.notice, "DOCKER_PERSISTENT_REMOVED", "removed a persistent container (\(reason))", ["containerId": "\(id)", "name": "\(name)", "reason": "\(reason)"])
    }
}
