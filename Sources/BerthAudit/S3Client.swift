import AsyncHTTPClient
import BerthConfig
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL

/// The few S3 calls the audit uploader needs: PUT for small objects, multipart for large ones.
struct S3Client: AuditUploadTarget {
    let config: AuditConfig.S3
    let http: HTTPClient
    let signer: S3Signer

    init(config: AuditConfig.S3) throws {
        self.config = config
        var tls = TLSConfiguration.makeClientConfiguration()
        if !config.cacert.isEmpty {
            tls.trustRoots =
                FileManager.default.fileExists(atPath: config.cacert)
                ? .file(config.cacert)
                : .certificates(try NIOSSLCertificate.fromPEMBytes(Array(config.cacert.utf8)))
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        signer = S3Signer(accessKey: config.accessKey, secretKey: config.secretKey, region: config.region)
    }

    func shutdown() async { try? await http.shutdown() }

    func objectURL(_ key: String, query: String = "") -> URL {
        let endpoint = config.endpoint.isEmpty ? "https://s3.\(config.region).amazonaws.com" : config.endpoint
        var components = URLComponents(string: endpoint)!
        let encodedKey = S3Signer.encode(key, keepSlash: true)
        if config.pathStyleAccess {
            components.percentEncodedPath = "/\(config.bucket)/\(encodedKey)"
        } else {
            components.host = "\(config.bucket).\(components.host ?? "")"
            components.percentEncodedPath = "/\(encodedKey)"
        }
        if !query.isEmpty { components.percentEncodedQuery = query }
        return components.url!
    }

    func metadataHeaders(_ info: AuditObjectInfo) -> [String: String] {
        var headers: [String: String] = [:]
        if config.metadataIP { headers["x-amz-meta-ip"] = S3Metadata.headerValue(info.ip) }
        if config.metadataUsername { headers["x-amz-meta-username"] = S3Metadata.headerValue(info.username) }
        if !config.acl.isEmpty { headers["x-amz-acl"] = config.acl }
        return headers
    }

    /// Sends one signed request; a status other than 2xx (or one of `accept`) is an error
    /// carrying S3's answer. Answers longer than `limit` bytes are an error.
    @discardableResult
    func send(
        _ method: HTTPMethod, _ url: URL, headers: [String: String] = [:], body: [UInt8] = [], limit: Int = 1 << 20, accept: Set<UInt> = []
    ) async throws -> (HTTPHeaders, [UInt8]) {
        let (_, answerHeaders, answer) = try await execute(method, url, headers: headers, body: body, limit: limit, accept: accept)
        return (answerHeaders, answer)
    }

    /// As `send`, with the status (2xx or one of `accept`).
    func execute(
        _ method: HTTPMethod, _ url: URL, headers: [String: String] = [:], body: [UInt8] = [], limit: Int = 1 << 20, accept: Set<UInt> = []
    ) async throws -> (UInt, HTTPHeaders, [UInt8]) {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = method
        for (name, value) in signer.sign(method: method.rawValue, url: url, headers: headers, body: body) where name != "host" {
            request.headers.add(name: name, value: value)
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response: HTTPClientResponse
        let answer: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .seconds(120))
            answer = try await response.body.collect(upTo: limit)
        } catch {
            throw AuditStorageError(description: "S3 \(method.rawValue) \(url.path): \(error)", outage: Self.isOutage(error))
        }
        let status = response.status.code
        if accept.contains(status) { return (status, response.headers, Array(answer.readableBytesView)) }
        guard (200..<300).contains(status) else {
            throw AuditStorageError(
                description: "S3 \(method.rawValue) \(url.path) answered \(status): \(String(buffer: answer).prefix(300))",
                outage: status >= 500 || status == 408 || status == 429)
        }
        return (status, response.headers, Array(answer.readableBytesView))
    }

    /// Every object under `prefix` (ListObjectsV2, following continuation tokens), at most
    /// `maxObjects` of them.
    func list(prefix: String, maxObjects: Int) async throws -> (objects: [S3ListPage.Object], complete: Bool) {
        var objects: [S3ListPage.Object] = []
        var token: String?
        repeat {
            var query = "list-type=2"
            if !prefix.isEmpty { query += "&prefix=\(S3Signer.encode(prefix))" }
            if let token { query += "&continuation-token=\(S3Signer.encode(token))" }
            let (_, body) = try await send(.GET, objectURL("", query: query), limit: 8 << 20)
            let page = try S3ListPage.parse(body)
            objects += page.objects
            guard page.isTruncated else { return (objects, true) }
            guard let next = page.nextContinuationToken, !next.isEmpty, next != token else {
                throw AuditStorageError(description: "S3 listed a truncated page without a new NextContinuationToken")
            }
            token = next
        } while objects.count < maxObjects
        return (Array(objects.prefix(maxObjects)), false)
    }

    /// The object's bytes (the first `firstBytes` when given), nil when there is no such object.
    func get(_ key: String, firstBytes: Int? = nil, limit: Int) async throws -> [UInt8]? {
        let headers = firstBytes.map { ["range": "bytes=0-\($0 - 1)"] } ?? [:]
        let (status, _, body) = try await execute(.GET, objectURL(key), headers: headers, limit: limit, accept: [404])
        return status == 404 ? nil : body
    }

    /// Failures that say S3 is unreachable or busy, not that this request is wrong: connection
    /// refused, DNS, TLS, timeouts. What the HTTP client refuses to send (an invalid header
    /// value, a bad URL) is about the request.
    static func isOutage(_ error: any Error) -> Bool {
        guard let error = error as? HTTPClientError else { return true }
        return [
            .connectTimeout, .readTimeout, .writeTimeout, .remoteConnectionClosed, .tlsHandshakeTimeout, .deadlineExceeded,
            .getConnectionFromPoolTimeout, .cancelled, .uncleanShutdown, .alreadyShutdown,
        ].contains(error)
    }

    /// Uploads a whole file: one PUT up to the part size, multipart above it.
    func upload(key: String, file: String, info: AuditObjectInfo) async throws {
        guard let handle = FileHandle(forReadingAtPath: file) else { throw AuditStorageError(description: "cannot read \(file)") }
        defer { try? handle.close() }
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        if size <= config.uploadPartSize {
            let body = Array(try handle.readToEnd() ?? Data())
            try await send(.PUT, objectURL(key), headers: metadataHeaders(info), body: body)
            return
        }
        let (_, created) = try await send(.POST, objectURL(key, query: "uploads="), headers: metadataHeaders(info))
        guard let uploadID = Self.element("UploadId", in: created) else { throw AuditStorageError(description: "S3 gave no UploadId") }
        let idQuery = "uploadId=\(S3Signer.encode(uploadID))"
        do {
            var parts: [(Int, String)] = []
            var number = 1
            while let data = try handle.read(upToCount: config.uploadPartSize), !data.isEmpty {
                let (headers, _) = try await send(.PUT, objectURL(key, query: "partNumber=\(number)&\(idQuery)"), body: Array(data))
                parts.append((number, headers.first(name: "ETag") ?? ""))
                number += 1
            }
            let list = parts.map { "<Part><PartNumber>\($0.0)</PartNumber><ETag>\($0.1)</ETag></Part>" }.joined()
            try await send(.POST, objectURL(key, query: idQuery), body: Array("<CompleteMultipartUpload>\(list)</CompleteMultipartUpload>".utf8))
        } catch {
            _ = try? await send(.DELETE, objectURL(key, query: idQuery))
            throw error
        }
    }

    private static func element(_ name: String, in xml: [UInt8]) -> String? {
        let text = String(decoding: xml, as: UTF8.self)
        guard let start = text.range(of: "<\(name)>"), let end = text.range(of: "</\(name)>", range: start.upperBound..<text.endIndex) else { return nil }
        return String(text[start.upperBound..<end.lowerBound])
    }
}
