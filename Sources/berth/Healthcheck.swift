import ArgumentParser
import BerthConfig
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

struct Healthcheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask a running Berth whether it is serving (exit 0) or not (exit 1), for container health checks.",
        discussion: "Without --url the address comes from health.listen in the configuration file."
    )

    @Option(name: .long, help: "Health endpoint URL, e.g. http://127.0.0.1:7000/.")
    var url: String?

    @Option(name: .long, help: "Configuration file to read health.listen from. Default: $BERTH_CONFIG, else config.yaml.")
    var config: String?

    func run() async throws {
        let target = try url ?? Self.url(fromConfig: config ?? ConfigPath.fromEnvironment() ?? "config.yaml")
        guard let endpoint = URL(string: target) else { throw ValidationError("--url \(target) is not a URL") }
        var request = URLRequest(url: endpoint)
        request.timeoutInterval = 5
        do {
            let (data, response) = try await URLSession.shared.data(for: request)
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            print("\(status) \(String(decoding: data, as: UTF8.self))")
            if status != 200 { throw ExitCode(1) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            print("unhealthy: \(error.localizedDescription)")
            throw ExitCode(1)
        }
    }

    static func url(fromConfig path: String) throws -> String {
        let health = try ConfigLoader.load(path: path).config.health
        guard health.enable else { throw ValidationError("health.enable is false in \(path); nothing to ask") }
        guard let colon = health.listen.lastIndex(of: ":") else { throw ValidationError("health.listen is not host:port") }
        var host = String(health.listen[..<colon])
        if host.isEmpty || host == "0.0.0.0" || host == "[::]" { host = "127.0.0.1" }
        return "http://\(host):\(health.listen[health.listen.index(after: colon)...])/"
    }
}
