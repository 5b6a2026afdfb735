import BerthConfig
import BerthCore
import Foundation
import NIOSSL

/// Where the API server is and how to authenticate: from `kubernetes.connection`, else the
/// in-cluster service account, else the current context of a kubeconfig file.
struct KubernetesEndpoint: Sendable {
    let scheme: String
    let host: String
    let port: Int
    let pathPrefix: String
    let token: String
    let tokenFile: String
    let tls: TLSConfiguration?
    /// `kubernetes.connection.serverName` (kubeconfig `tls-server-name`): the name sent in SNI
    /// and checked against the server's certificate instead of `host`, which may be an IP.
    var serverName = ""

    static let serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount"

    static func resolve(_ connection: KubernetesConfig.Connection, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> KubernetesEndpoint {
        var settings = connection
        if settings.host.isEmpty, let serviceHost = environment["KUBERNETES_SERVICE_HOST"], !serviceHost.isEmpty {
            let port = environment["KUBERNETES_SERVICE_PORT"] ?? "443"
            settings.host = serviceHost.contains(":") ? "https://[\(serviceHost)]:\(port)" : "https://\(serviceHost):\(port)"
            if settings.cacert.isEmpty { settings.cacert = "\(serviceAccount)/ca.crt" }
            if settings.bearerToken.isEmpty && settings.bearerTokenFile.isEmpty { settings.bearerTokenFile = "\(serviceAccount)/token" }
        }
        let kubeconfigPath = settings.kubeconfig.isEmpty ? (environment["KUBECONFIG"] ?? "") : settings.kubeconfig
        if settings.host.isEmpty && !kubeconfigPath.isEmpty {
            try Kubeconfig.apply(path: kubeconfigPath, to: &settings)
        }
        guard !settings.host.isEmpty else {
            throw KubernetesError("KUBERNETES_CONFIG_INVALID", "no API server: set kubernetes.connection.host or kubeconfig, or run in a cluster")
        }
        var address = settings.host
        if !address.contains("://") { address = "https://\(address)" }
        guard let url = URLComponents(string: address), let scheme = url.scheme, let host = url.host, !host.isEmpty else {
            throw KubernetesError("KUBERNETES_CONFIG_INVALID", "kubernetes.connection.host \(settings.host) is not a URL")
        }
        let secure = scheme == "https"
        var prefix = url.path
        if !settings.path.isEmpty && settings.path != "/api" { prefix += settings.path }
        while prefix.hasSuffix("/") { prefix.removeLast() }
        return KubernetesEndpoint(
            scheme: scheme, host: host, port: url.port ?? (secure ? 443 : 80), pathPrefix: prefix,
            token: settings.bearerToken, tokenFile: settings.bearerTokenFile,
            tls: secure ? try tlsConfiguration(settings) : nil, serverName: secure ? settings.serverName : "")
    }

    private static func tlsConfiguration(_ settings: KubernetesConfig.Connection) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        do {
            if !settings.cacert.isEmpty { tls.trustRoots = .certificates(try certificates(settings.cacert)) }
            if !settings.cert.isEmpty {
                tls.certificateChain = try certificates(settings.cert).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: try pem(settings.key), format: .pem))
            }
        } catch let error as KubernetesError {
            throw error
        } catch {
            throw KubernetesError("KUBERNETES_CONFIG_INVALID", "cannot load the TLS settings: \(error)")
        }
        if settings.insecure { tls.certificateVerification = .none }
        return tls
    }

    private static func certificates(_ value: String) throws -> [NIOSSLCertificate] {
        try NIOSSLCertificate.fromPEMBytes(try pem(value))
    }

    /// PEM text as given, or the contents of the file it names.
    static func pem(_ value: String) throws -> [UInt8] {
        if value.contains("-----BEGIN") { return Array(value.utf8) }
        guard let data = FileManager.default.contents(atPath: value) else {
            throw KubernetesError("KUBERNETES_CONFIG_INVALID", "cannot read \(value)")
        }
        return Array(data)
    }

    /// With a server name the URL names it, and `dnsOverride` sends the connection to `host`:
    /// that is how AsyncHTTPClient takes an SNI and verification name other than the address.
    var baseURL: String {
        let urlHost = serverName.isEmpty ? host : serverName
        return "\(scheme)://\(urlHost.contains(":") ? "[\(urlHost)]" : urlHost):\(port)\(pathPrefix)"
    }

    var dnsOverride: [String: String] { serverName.isEmpty ? [:] : [serverName: host] }

    /// The name for SNI and certificate verification on the exec stream; SNI carries no IP address.
    var tlsServerHostname: String? {
        if !serverName.isEmpty { return serverName }
        return host.first?.isNumber == true || host.contains(":") ? nil : host
    }

    /// The token to send now; a token file is re-read so rotated service-account tokens work.
    func currentToken() -> String {
        if !tokenFile.isEmpty, let data = FileManager.default.contents(atPath: tokenFile) {
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return token
    }
}

/// The parts of a kubeconfig file Berth uses: the current context's cluster and user.
enum Kubeconfig {
    static func apply(path: String, to settings: inout KubernetesConfig.Connection) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KubernetesError("KUBERNETES_CONFIG_INVALID", "cannot read kubeconfig \(path)")
        }
        let document = try ConfigValue.parse(String(decoding: data, as: UTF8.self), format: .yaml, source: path)
        guard case .string(let contextName)? = document["current-context"],
            let context = named(document["contexts"], contextName)?["context"],
            case .string(let clusterName)? = context["cluster"],
            let cluster = named(document["clusters"], clusterName)?["cluster"],
            case .string(let server)? = cluster["server"]
        else {
            throw KubernetesError("KUBERNETES_CONFIG_INVALID", "kubeconfig \(path): no current context with a cluster server")
        }
        settings.host = server
        let directory = (path as NSString).deletingLastPathComponent
        func file(_ value: ConfigValue?) -> String? {
            guard case .string(let name)? = value, !name.isEmpty else { return nil }
            return name.hasPrefix("/") ? name : "\(directory)/\(name)"
        }
        func inline(_ value: ConfigValue?) -> String? {
            guard case .string(let base64)? = value, let decoded = Data(base64Encoded: base64) else { return nil }
            return String(decoding: decoded, as: UTF8.self)
        }
        if settings.cacert.isEmpty { settings.cacert = inline(cluster["certificate-authority-data"]) ?? file(cluster["certificate-authority"]) ?? "" }
        if case .bool(true)? = cluster["insecure-skip-tls-verify"] { settings.insecure = true }
        if case .string(let name)? = cluster["tls-server-name"] { settings.serverName = name }
        guard case .string(let userName)? = context["user"], let user = named(document["users"], userName)?["user"] else { return }
        if settings.bearerToken.isEmpty, case .string(let token)? = user["token"] { settings.bearerToken = token }
        if settings.bearerTokenFile.isEmpty, let tokenFile = file(user["tokenFile"]) { settings.bearerTokenFile = tokenFile }
        if settings.cert.isEmpty { settings.cert = inline(user["client-certificate-data"]) ?? file(user["client-certificate"]) ?? "" }
        if settings.key.isEmpty { settings.key = inline(user["client-key-data"]) ?? file(user["client-key"]) ?? "" }
    }

    private static func named(_ list: ConfigValue?, _ name: String) -> ConfigValue? {
        guard case .array(let items)? = list else { return nil }
        return items.first { if case .string(name)? = $0["name"] { return true } else { return false } }
    }
}

struct KubernetesError: CodedError {
    let code: MessageCode
    let message: String

    init(_ code: MessageCode, _ message: String) {
        self.code = code
        self.message = message
    }
}
