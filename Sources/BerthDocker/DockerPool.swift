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
    private var ready: [(id: String, created: ContinuousClock.Instant)] = []
    private var starting = 0
    private var stopped = false
    private var failures = 0
    private var maintenance: Task<Void, Never>?

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
    func take() -> String? {
        guard !stopped else { return nil }
        dropExpired()
        guard !ready.isEmpty else { return nil }
        let id = ready.removeFirst().id
        refill()
        BerthMetrics.poolTaken()
        return id
    }

    var readyCount: Int { ready.count }

    func shutdown() async {
        stopped = true
        maintenance?.cancel()
        let leftover = ready.map(\.id)
        ready = []
        for id in leftover { await remove(id) }
    }

    private func replaceExpired() {
        dropExpired()
        refill()
    }

    private func dropExpired() {
        let now = ContinuousClock.now
        let expired = ready.filter { now - $0.created > maxAge }.map(\.id)
        guard !expired.isEmpty else { return }
        ready.removeAll { now - $0.created > maxAge }
        Task { for id in expired { await self.remove(id) } }
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
        do {
            let id = try await backend.startPoolContainer()
            starting -= 1
            failures = 0
            guard !stopped else { return await remove(id) }
            ready.append((id, .now))
            backend.logger.log(.debug, "DOCKER_POOL_FILLED", "pool container ready", ["containerId": "\(id)", "ready": "\(ready.count)"])
        } catch {
            starting -= 1
            failures += 1
            backend.logger.log(.warning, "DOCKER_POOL_START_FAILED", "could not start a pool container: \(error)")
        }
        refill()
    }

    private func remove(_ id: String) async {
        do {
            try await backend.client.removeContainer(id)
            BerthMetrics.containerRemoved()
        } catch {
            backend.logger.log(.warning, "DOCKER_POOL_REMOVE_FAILED", "could not remove pool container: \(error)", ["containerId": "\(id)"])
        }
    }
}
