import BerthAgentLink
import BerthAgentProtocol
import BerthConfig
import BerthCore
import BerthForwarding
import Logging
import NIOConcurrencyHelpers

/// One user's connection on the Kubernetes backend: its pod (connection mode), the user's (or
/// the shared) persistent pod, or its sessions' pods (session mode), and their removal at the end.
public final class KubernetesConnection: SSHConnectionHandler, ContainerOwner, AgentSessionHost {
    let backend: KubernetesBackend
    let metadata: ConnectionMetadata
    public let logger: Logger
    public let forwards = ForwardRegistry()
    private let state = NIOLockedValueBox(State())

    private struct State {
        var pod: String?
        /// The link to the connection's (or the persistent) pod's agent.
        var link: AgentLink?
        /// Pods this connection created and must remove (never the shared persistent one).
        var ownPods: Set<String> = []
        var sessions: [ObjectIdentifier: AgentSession] = [:]
        var attachedSessions: [ObjectIdentifier: KubernetesSession] = [:]
        /// Persistent mode: the user's own pod, whose idle clock this connection holds.
        var userPod = false
        var tornDown = false
    }

    /// A backend made for this user's configuration alone, closed with the connection.
    let ownsBackend: Bool

    init(backend: KubernetesBackend, metadata: ConnectionMetadata, logger: Logger, ownsBackend: Bool) {
        self.backend = backend
        self.ownsBackend = ownsBackend
        self.metadata = metadata
        self.logger = logger
    }

    var pod: String? { state.withLockedValue { $0.pod } }
    public var servingContainer: String? { pod }
    public var link: AgentLink? { state.withLockedValue { $0.link } }
    /// The programs' environment; it travels in the agent link's START frames only.
    var environment: [String: String] { metadata.programEnvironment(exposeMetadata: backend.config.pod.exposeAuthMetadataAsEnv) }

    /// Without the agent the pod spec is the only way in, and the pod object is kept and shown
    /// by the API server: sensitive entries stay out.
    var podSpecEnvironment: [String: String] {
        metadata.specEnvironment(
            exposeMetadata: backend.config.pod.exposeAuthMetadataAsEnv, logger: logger, code: "KUBERNETES_SENSITIVE_ENV_OMITTED",
            spec: "pod spec (disableAgent)")
    }

    /// Connection mode: the connection's pod; every session is a program started over its link.
    func startPod() async throws {
        let (name, link) = try await startLinkedPod()
        state.withLockedValue {
            $0.pod = name
            $0.link = link
        }
        try await writeFiles(link)
    }

    /// Creates a pod and waits until it is ready; it is this connection's to remove from the
    /// moment it exists, so a failed start leaves nothing behind.
    func createPod(_ body: ConfigValue) async throws -> KubernetesClient.Pod {
        let created = try await backend.client.createPod(namespace: backend.namespace, body: backend.owned(body))
        let name = created.name
        state.withLockedValue { _ = $0.ownPods.insert(name) }
        BerthMetrics.containerStarted()
        let ready = try await backend.client.waitUntilReady(namespace: backend.namespace, name: name, limit: backend.config.timeouts.podStart.duration)
        logger.log(.debug, "KUBERNETES_POD_READY", "pod running and ready", ["pod": "\(backend.namespace)/\(name)"])
        return ready
    }

    /// An idle pod for the connection (or a session) and the link to its agent. With the
    /// pod-IP link the agent is the pod's main process, listening on the pod's IP for Berth,
    /// which proves itself with a secret made for this pod; otherwise the pod runs the idle
    /// command and the link is one exec (docs/agent-protocol.md, "Links").
    func startLinkedPod() async throws -> (name: String, link: AgentLink) {
        let pod = backend.config.pod
        var command = pod.idleCommand
        var environment: [String: String] = [:]
        let secret = backend.usesPodIPLink ? randomHex(32) : nil
        if let secret {
            command = [pod.agentPath, "serve", "--listen", ":\(KubernetesPodSpec.agentPort)", "--signal", "INT", "--signal", "TERM"]
            environment[AgentHello.secretVariable] = secret
        }
        let body = KubernetesPodSpec.body(
            pod: pod, owner: backend.identity, metadata: metadata, command: command, environment: environment, tty: false, interactive: false)
        let ready = try await createPod(body)
        let link = try await backend.openLink(pod: ready.name, podIP: secret.map { (ready.podIP, $0) }, logger: logger)
        return (ready.name, link)
    }

    /// Persistent mode: the user's own pod, created when missing; or, with `persistentShared`,
    /// the one named pod, created when missing if `createMissingPods` allows.
    func findPersistentPod() async throws {
        guard backend.config.pod.persistentShared else {
            try await findUserPod()
            return
        }
        let name = backend.config.pod.podName
        for attempt in 0..<3 {
            if try await backend.client.getPod(namespace: backend.namespace, name: name) != nil {
                try await useWhenReady(name)
                return
            }
            if attempt < 2 { try await Task.sleep(for: .seconds(2)) }
        }
        guard backend.config.pod.createMissingPods else {
            throw KubernetesError("KUBERNETES_POD_NOT_FOUND", "pod \(backend.namespace)/\(name) does not exist and createMissingPods is off")
        }
        try await createThenUse(name, persistent: .shared)
    }

    /// The user's pod, named after the user, so every connection of the same user (also two
    /// logging in at once: the API server creates a name only once) ends up in the same pod. A
    /// pod left by a dead server is used as it is (same container) and adopted.
    private func findUserPod() async throws {
        let pod = backend.config.pod
        let username = metadata.effectiveUsername
        let name = UserPodName.make(prefix: pod.userPodPrefix, username: username)
        var charge: KubernetesBackend.Charge?
        if try await backend.client.getPod(namespace: backend.namespace, name: name) != nil {
            charge = ownsBackend ? nil : await backend.takeCharge(of: name)
            try await useWhenReady(name)
        } else {
            var claim: (name: String, mountPath: String)?
            if backend.persistence.volume.enabled {
                let mountPath = backend.persistence.volume.mountPath.isEmpty ? (loginAccount?.home ?? "/root") : backend.persistence.volume.mountPath
                claim = (try await backend.ensureUserClaim(username: username, logger: logger), mountPath)
            }
            try await createThenUse(name, persistent: .user, claim: claim)
        }
        // A backend made for one connection (a webhook's own Kubernetes setup) closes with it and
        // cannot delete later: such pods stay, as before.
        guard !ownsBackend else { return }
        let found = try await backend.client.getPod(namespace: backend.namespace, name: name)
        let created = found.flatMap { KubernetesPersistentPods.creationTime($0.value) }
        if charge == nil {
            // Created by this connection, or (409) by another server at the same moment.
            let server = found?.value["metadata"]?["labels"]?[ServerIdentity.label]?.stringValue
            charge = server == KubernetesPodSpec.serverName(backend.identity) ? .own : .foreign
        }
        if charge == .foreign {
            logger.log(.info, "KUBERNETES_PERSISTENT_FOREIGN", "the user's pod is looked after by another running server", ["pod": "\(backend.namespace)/\(name)"])
        }
        state.withLockedValue { $0.userPod = true }
        await KubernetesPersistentPods.shared.attach(name, connection: ObjectIdentifier(self), backend: backend, created: created, lookedAfter: charge != .foreign)
    }

    /// Creates persistent pod `name` (a 409 means another connection created it at the same
    /// moment, which is as good), waits for it and uses it.
    private func createThenUse(_ name: String, persistent: KubernetesPodSpec.Persistent, claim: (name: String, mountPath: String)? = nil) async throws {
        let pod = backend.config.pod
        var body = KubernetesPodSpec.body(
            pod: pod, owner: backend.identity, metadata: metadata, command: pod.idleCommand, environment: [:],
            tty: false, interactive: false, name: name, persistent: persistent)
        if persistent == .user { body = backend.leased(body) }
        if let claim {
            guard let mounted = KubernetesUserVolume.mounting(body, claim: claim.name, mountPath: claim.mountPath, console: pod.consoleContainerNumber) else {
                throw KubernetesError(
                    "KUBERNETES_VOLUME_FAILED",
                    "cannot mount the user's volume claim: the pod spec has no console container \(pod.consoleContainerNumber) or its volumes are not lists")
            }
            body = mounted
        }
        do {
            _ = try await backend.client.createPod(namespace: backend.namespace, body: body)
        } catch let error as KubernetesAPIError where error.status == 409 {
        }
        try await useWhenReady(name)
    }

    private func useWhenReady(_ name: String) async throws {
        _ = try await backend.client.waitUntilReady(namespace: backend.namespace, name: name, limit: backend.config.timeouts.podStart.duration)
        try await usePersistentPod(name)
    }

    /// Each connection has a link of its own to the persistent pod (its own `agent serve`).
    private func usePersistentPod(_ name: String) async throws {
        let link = try await backend.openLink(pod: name, podIP: nil, logger: logger)
        state.withLockedValue {
            $0.pod = name
            $0.link = link
        }
        try await writeFiles(link)
    }

    /// Webhook `files` go in through the agent (mode 0600).
    func writeFiles(_ link: AgentLink?) async throws {
        guard !metadata.files.isEmpty else { return }
        guard let link else {
            logger.log(.warning, "KUBERNETES_AGENT_DISABLED", "webhook files are not written: the agent is disabled")
            return
        }
        try await link.writeFiles(metadata.files, as: loginAccount, failure: "KUBERNETES_FILE_WRITE_FAILED", into: "pod")
    }

    func forgetPod(_ name: String) {
        state.withLockedValue { _ = $0.ownPods.remove(name) }
    }

    public func onSessionChannel(_ channel: any SessionChannel) async throws -> any SessionChannelHandler {
        if backend.config.pod.disableAgent {
            let session = KubernetesSession(connection: self, channel: channel)
            state.withLockedValue { $0.attachedSessions[ObjectIdentifier(session)] = session }
            return session
        }
        let session = AgentSession(host: self, channel: channel)
        state.withLockedValue { $0.sessions[ObjectIdentifier(session)] = session }
        return session
    }

    func sessionClosed(_ session: KubernetesSession) {
        state.withLockedValue { _ = $0.attachedSessions.removeValue(forKey: ObjectIdentifier(session)) }
    }

    // MARK: AgentSessionHost

    public var shellCommand: [String] { backend.config.pod.shellCommand }
    public var subsystems: [String: String] { backend.config.pod.subsystems }
    public var programEnvironment: [String: String] { environment }
    public var loginAccount: AgentUser? { backend.config.pod.loginUser.account(for: metadata.effectiveUsername) }

    /// Persistent pods outlive the connection, so their interactive programs may too
    /// (docs/agent-protocol.md, "Resumable sessions"); a pod that ends with the connection has
    /// nothing to resume.
    public var resume: AgentResumeSettings? {
        guard backend.config.pod.mode == .persistent else { return nil }
        return AgentResumeSettings(persistence: backend.persistence, owner: metadata.effectiveUsername, maxSessions: backend.maxSessions)
    }

    public var openSessionCount: Int { state.withLockedValue { $0.sessions.count } }

    public func sessionTarget() async throws -> AgentSessionTarget {
        switch backend.config.pod.mode {
        case .connection, .persistent:
            guard let link else { throw KubernetesError("KUBERNETES_NO_POD", "the connection has no pod") }
            if let reason = link.closedReason {
                throw RequestRefused("KUBERNETES_AGENT_GONE", "the agent in the pod is gone: \(reason)")
            }
            return AgentSessionTarget(link: link)
        case .session:
            // A pod of the session's own, idle, with the program started over its link.
            let (name, link) = try await startLinkedPod()
            try await writeFiles(link)
            return AgentSessionTarget(link: link) {
                await link.close()
                await self.remove(name)
                self.forgetPod(name)
            }
        }
    }

    public func sessionEnded(_ session: AgentSession) {
        state.withLockedValue { _ = $0.sessions.removeValue(forKey: ObjectIdentifier(session)) }
    }

    /// Graceful stop: TERM to every program still running.
    public func terminatePrograms() async {
        for session in state.withLockedValue({ Array($0.sessions.values) }) { await session.terminate() }
        for session in state.withLockedValue({ Array($0.attachedSessions.values) }) { await session.terminate() }
    }

    public func onUnsupportedChannel(type: String) async {}
    public func onUnsupportedGlobalRequest(type: String) async {}

    /// Removes the connection's pods (never the persistent one), retrying within `podStop`.
    public func tearDown() async {
        await forwards.closeAll()
        let (pods, link) = state.withLockedValue { state -> ([String], AgentLink?) in
            guard !state.tornDown else { return ([], nil) }
            state.tornDown = true
            return (Array(state.ownPods), state.link)
        }
        await link?.close()
        if state.withLockedValue({ $0.userPod }) { await KubernetesPersistentPods.shared.detach(ObjectIdentifier(self)) }
        for pod in pods { await remove(pod) }
        if ownsBackend { await backend.shutdown() }
    }

    func remove(_ pod: String) async {
        let backend = backend
        await removeRetrying(
            "pod", ["pod": "\(backend.namespace)/\(pod)"], limit: backend.config.timeouts.podStop.duration, pause: .seconds(1),
            removed: "KUBERNETES_POD_REMOVED", failed: "KUBERNETES_POD_REMOVE_FAILED", logger: logger
        ) { try await backend.client.deletePod(namespace: backend.namespace, name: pod) }
    }
}
