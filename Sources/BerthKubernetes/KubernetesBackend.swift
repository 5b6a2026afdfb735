import BerthAgentLink
import BerthConfig
import BerthCore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// The Kubernetes backend (docs/configuration.md, "kubernetes"): a pod per connection (`connection`), per session
/// (`session`), or a pod per user that outlives connections (`persistent`; with
/// `persistentShared`, one named pod for everyone).
public final class KubernetesBackend: Sendable {
    let config: KubernetesConfig
    /// This server, as its pods' labels and its lease name it.
    let identity: ServerIdentity
    let persistence: PersistenceConfig
    /// `security.maxSessions` (nil: no limit), which detached sessions count against.
    let maxSessions: Int?
    let client: KubernetesClient
    let logger: Logger

    /// The streaming protocol version the API server speaks, learnt from the first stream.
    private let negotiated = NIOLockedValueBox<Int?>(nil)
    /// Berth's own pod, found at start-up when Berth runs in the users' namespace.
    private let owner = NIOLockedValueBox<KubernetesOwner?>(nil)
    /// This server's proof of life for other servers (pods of dead servers are reaped by it).
    let lease: KubernetesLease

    public init(
        config: KubernetesConfig, identity: ServerIdentity, persistence: PersistenceConfig = PersistenceConfig(), maxSessions: Int? = nil, logger: Logger
    ) throws {
        self.config = config
        self.identity = identity
        self.persistence = persistence
        self.maxSessions = maxSessions
        self.logger = logger
        client = KubernetesClient(endpoint: try KubernetesEndpoint.resolve(config.connection), timeout: config.timeouts.http.duration)
        lease = KubernetesLease(identity: identity.name, namespace: config.pod.namespace, client: client, logger: logger)
    }

    var endpoint: KubernetesEndpoint { client.endpoint }

    /// A connection's or session's pod as created: owned by Berth's pod when there is one, and
    /// labelled with this server's lease while it holds it.
    func owned(_ body: ConfigValue) -> ConfigValue {
        let owned = owner.withLockedValue { $0 }?.owning(body) ?? body
        guard lease.isHeld else { return owned }
        return owned.merging(.object([("metadata", .object([("labels", .object([(KubernetesLease.label, .string(lease.name))]))]))]))
    }
    /// A user's persistent pod as created: no owner (it outlives Berth's pod), but this server's
    /// lease while it holds it, so that others can tell when to adopt it.
    func leased(_ body: ConfigValue) -> ConfigValue {
        guard lease.isHeld else { return body }
        return body.merging(.object([("metadata", .object([("labels", .object([(KubernetesLease.label, .string(lease.name))]))]))]))
    }
    var namespace: String { config.pod.namespace }
    var container: String { KubernetesPodSpec.consoleContainer(config.pod) }

    public func shutdown() async {
        await lease.release()
        await client.shutdown()
    }

    /// Crash hygiene: at start-up no connection of this server is live, so the pods it labelled
    /// are left over from an earlier run (persistent pods belong to no connection; this server's
    /// per-user ones, and those of dead servers, come under its `persistence` timers).
    public func removeOrphans(environment: [String: String] = ProcessInfo.processInfo.environment) async {
        let found = await KubernetesOwner.find(client: client, usersNamespace: namespace, environment: environment, logger: logger)
        owner.withLockedValue { $0 = found }
        await lease.acquire { [weak self] in
            await self?.reapDeadServers()
            await self?.adoptUserPods()
        }
        await reapDeadServers()
        guard config.pod.mode != .persistent else {
            await adoptUserPods()
            return
        }
        do {
            for pod in try await client.listPods(namespace: namespace, labelSelector: KubernetesPodSpec.orphanSelector(identity)) {
                try await client.deletePod(namespace: pod.namespace, name: pod.name)
                logger.log(.notice, "KUBERNETES_ORPHAN_REMOVED", "removed a pod left over from an earlier run", ["pod": "\(pod.namespace)/\(pod.name)"])
            }
        } catch {
            logger.log(.warning, "KUBERNETES_ORPHAN_CLEANUP_FAILED", "could not look for left-over pods: \(error)")
        }
    }

    /// Removes the connection and session pods of servers whose lease is gone or expired; pods
    /// of servers with a fresh lease, or whose lease cannot be read, are left alone.
    func reapDeadServers() async {
        do {
            let pods = try await client.listPods(namespace: namespace, labelSelector: "\(KubernetesLease.label),\(KubernetesPodSpec.connectionLabel)")
            var byLease: [String: [(namespace: String, name: String)]] = [:]
            for pod in pods {
                guard let leaseName = pod.labels?[KubernetesLease.label]?.stringValue, leaseName != lease.name else { continue }
                byLease[leaseName, default: []].append((pod.namespace, pod.name))
            }
            for (leaseName, dead) in byLease {
                let found: ConfigValue?
                do {
                    found = try await client.call(.GET, "/apis/coordination.k8s.io/v1/namespaces/\(namespace)/leases/\(leaseName)")
                } catch let error as KubernetesAPIError where error.status == 404 {
                    found = nil
                }
                guard !KubernetesLease.isAlive(found) else { continue }
                for pod in dead {
                    try await client.deletePod(namespace: pod.namespace, name: pod.name)
                    logger.log(
                        .notice, "KUBERNETES_ORPHAN_REMOVED", "removed a pod of a server that is no longer running",
                        ["pod": "\(pod.namespace)/\(pod.name)", "lease": "\(leaseName)"])
                }
                if found != nil { _ = try? await client.call(.DELETE, "/apis/coordination.k8s.io/v1/namespaces/\(namespace)/leases/\(leaseName)") }
            }
            logger.log(.debug, "KUBERNETES_LEASES_CHECKED", "looked for pods of servers that are no longer running", ["servers": "\(byLease.count)"])
        } catch {
            logger.log(.warning, "KUBERNETES_ORPHAN_CLEANUP_FAILED", "could not look for pods of servers that are no longer running: \(error)")
        }
    }

    /// `ownsBackend`: this backend was made for this one connection and closes with it.
    public func connect(_ metadata: ConnectionMetadata, logger: Logger, ownsBackend: Bool = false) async throws -> KubernetesConnection {
        let connection = KubernetesConnection(backend: self, metadata: metadata, logger: logger, ownsBackend: ownsBackend)
        do {
            switch config.pod.mode {
            case .connection: try await connection.startPod()
            case .persistent: try await connection.findPersistentPod()
            case .session: break
            }
        } catch {
            await connection.tearDown()
            throw error
        }
        return connection
    }

    /// Opens an exec stream in `pod`.
    func exec(pod: String, _ command: [String], tty: Bool, stdin: Bool = true) async throws -> KubernetesStream {
        let query = KubernetesPodSpec.execQuery(command, container: container, tty: tty, stdin: stdin)
        let stream = try await KubernetesStream.open(
            endpoint: endpoint, pathAndQuery: "/api/v1/namespaces/\(namespace)/pods/\(pod)/exec?\(query)",
            timeout: config.timeouts.commandStart.duration)
        negotiated.withLockedValue { $0 = stream.version }
        return stream
    }

    /// Whether pods get the pod-IP link: chosen (`agentLink: podIP`), or `auto` with Berth in
    /// the cluster. Only where the agent can be the pod's main process: not without the agent,
    /// not under another idle command, and not in persistent mode, whose pod outlives every
    /// link (the configuration refuses `podIP` there).
    var usesPodIPLink: Bool {
        let pod = config.pod
        guard !pod.disableAgent, pod.mode != .persistent, pod.idleCommand == KubernetesConfig.Pod().idleCommand else { return false }
        switch pod.agentLink {
        case .podIP: return true
        case .exec: return false
        case .auto: return !(ProcessInfo.processInfo.environment["KUBERNETES_SERVICE_HOST"] ?? "").isEmpty
        }
    }

    /// The fastest link that works: the agent on the pod's IP (`podIP`: the address and the
    /// pod's secret), else `agent serve --stdio` in `pod` over one WebSocket exec stream (the
    /// link never needs stdin EOF, so v4 API servers work as well as v5).
    func openLink(pod: String, podIP: (address: String, secret: String)?, logger: Logger) async throws -> AgentLink {
        var log = logger
        log[metadataKey: "pod"] = "\(namespace)/\(pod)"
        if let (address, secret) = podIP {
            let started = ContinuousClock.now
            do {
                guard !address.isEmpty else { throw KubernetesError("KUBERNETES_NO_POD_IP", "the pod's status has no IP") }
                let link = try await AgentLink.connectTCP(
                    host: address, port: KubernetesPodSpec.agentPort, secret: Array(secret.utf8),
                    timeout: min(config.timeouts.podStart.duration, .seconds(10)), logger: log)
                log.log(.debug, "AGENT_LINK_UP", "linked to the agent", ["link": "tcp", "address": "\(address)", "took": "\(ContinuousClock.now - started)"])
                return link
            } catch {
                log.log(.warning, "AGENT_POD_IP_FAILED", "the agent on the pod's IP did not answer, linking through an exec: \(error)")
            }
        }
        let stream = try await exec(pod: pod, [config.pod.agentPath, "serve", "--stdio"], tty: false)
        return try await AgentLink.overExec(stream, helloTimeout: config.timeouts.commandStart.duration, logger: log)
    }

    func attach(pod: String, tty: Bool) async throws -> KubernetesStream {
        var query = ["stdin=true", "stdout=true", "stderr=\(!tty)", "tty=\(tty)"]
        if !container.isEmpty { query.append("container=\(KubernetesClient.encode(container))") }
        return try await KubernetesStream.open(
            endpoint: endpoint, pathAndQuery: "/api/v1/namespaces/\(namespace)/pods/\(pod)/attach?\(query.joined(separator: "&"))",
            timeout: config.timeouts.commandStart.duration)
    }
}
