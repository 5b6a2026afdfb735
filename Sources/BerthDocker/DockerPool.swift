import BerthConfig
import BerthCore
import Logging

/// The warm pool (`execution.pool`): started idle containers of the configured image, handed to
/// connections at login so they skip create and start. A container leaves the pool once, for one
/// connection, and is removed with it like any other; it is never given to a second user. The
/// webhook environment reaches programs through each exec's environment, files through the agent.
actor DockerPool {
    private let backend: DockerBackend
    private let size: Int
    private let maxAge: Duration
    private var ready: [(container: DockerLinkedContainer, created: ContinuousClock.Instant)] = []
    private var starting = 0
    private var stopped = false
    private var failures = 0
    private var maintenance: Task<Void, Never>?
    /// Containers being created right now. Shutdown waits for them: once started they are
    /// removed, not left behind by a process that has already exited. (A start still waiting out
    /// its back-off after failures creates nothing once stopped.)
    private var creating = 0
    private var startsDone: [CheckedContinuation<Void, Never>] = []

    init(backend: DockerBackend, config: DockerPoolConfig) {
        self.backend = backend
        self.size = config.size
        self.maxAge = config.maxAge.duration
    }

    func start() {
        refill()
        maintenance = Task { [maxAge] in
            while !Task.isCancelled {
                try? await Task.sleep(for: min(maxAge / 4, .seconds(30)))
                await self.replaceExpired()
            }
        }
    }

    /// A started container for a connection, or nil when none is ready (the caller then starts
    /// one itself, so an empty pool costs nothing but the usual start).
    func take() -> DockerLinkedContainer? {
        guard !stopped else { return nil }
        dropExpired()
        // A pool container whose agent went away is of no use to anyone. One pass: a link lost
        // between two looks would drop its container without removing it.
        var broken: [DockerLinkedContainer] = []
        ready.removeAll { entry in
            guard entry.container.link?.closedReason != nil else { return false }
            broken.append(entry.container)
            return true
        }
        if !broken.isEmpty { Task { for container in broken { await self.remove(container) } } }
        guard !ready.isEmpty else {
            refill()
            return nil
        }
        let taken = ready.removeFirst().container
        refill()
        BerthMetrics.poolTaken()
        return taken
    }

    var readyCount: Int { ready.count }

    func shutdown() async {
        stopped = true
        maintenance?.cancel()
        let leftover = ready.map(\.container)
        ready = []
        for container in leftover { await remove(container) }
        if creating > 0 { await withCheckedContinuation { startsDone.append($0) } }
    }

    private func startFinished() {
        starting -= 1
        guard stopped, creating == 0 else { return }
        let waiters = startsDone
        startsDone = []
        for waiter in waiters { waiter.resume() }
    }

    private func replaceExpired() {
        dropExpired()
        refill()
    }

    private func dropExpired() {
        let now = ContinuousClock.now
        let expired = ready.filter { now - $0.created > maxAge }.map(\.container)
        guard !expired.isEmpty else { return }
        ready.removeAll { now - $0.created > maxAge }
        Task { for container in expired { await self.remove(container) } }
    }

    private func refill() {
        guard !stopped else { return }
        while ready.count + starting < size {
            starting += 1
            Task { await self.startOne() }
        }
    }

    private func startOne() async {
        // After failures, wait before trying again instead of hammering a broken engine.
        if failures > 0 { try? await Task.sleep(for: .seconds(min(30, 1 << min(failures, 5)))) }
        guard !stopped else { return startFinished() }
        creating += 1
        do {
            let container = try await backend.startPoolContainer()
            failures = 0
            if stopped {
                await remove(container)
            } else {
                ready.append((container, .now))
                backend.logger.log(.debug, "DOCKER_POOL_FILLED", "pool container ready", ["containerId": "\(container.id)", "ready": "\(ready.count)"])
            }
        } catch {
            failures += 1
            backend.logger.log(.warning, "DOCKER_POOL_START_FAILED", "could not start a pool container: \(error)")
        }
        creating -= 1
        startFinished()
        refill()
    }

    private func remove(_ container: DockerLinkedContainer) async {
        await container.link?.close()
        do {
            try await backend.client.removeContainer(container.id)
            BerthMetrics.containerRemoved()
        } catch {
            backend.logger.log(.warning, "DOCKER_POOL_REMOVE_FAILED", "could not remove pool container: \(error)", ["containerId": "\(container.id)"])
        }
        if let directory = container.linkDirectory { DockerBackend.removeDirectory(directory) }
    }
}
