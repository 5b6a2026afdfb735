import Foundation

/// One page of a ListObjectsV2 answer (S3 API reference, "ListObjectsV2", response elements).
/// Read by a scanner of the few elements needed rather than an XML library: Foundation's
/// XMLParser is a separate module on Linux that links libxml2. Keys are unescaped (XML's five
/// entities and character references); anything that is not a ListBucketResult is refused.
public struct S3ListPage: Sendable, Equatable {
    public struct Object: Sendable, Equatable {
        public let key: String
        public let modified: Date
        public let size: Int
        public let etag: String
    }

    public var objects: [Object] = []
    public var isTruncated = false
    public var nextContinuationToken: String?

    public static func parse(_ xml: [UInt8]) throws -> S3ListPage {
        let text = String(decoding: xml, as: UTF8.self)
        guard text.contains("<ListBucketResult") else {
            throw AuditStorageError(description: "S3's listing is not a ListBucketResult: \(text.prefix(200))")
        }
        var page = S3ListPage()
        var rest = text[...]
        while let open = rest.range(of: "<Contents>") {
            guard let close = rest.range(of: "</Contents>", range: open.upperBound..<rest.endIndex) else {
                throw AuditStorageError(description: "S3's listing has an unclosed Contents element")
            }
            let entry = rest[open.upperBound..<close.lowerBound]
            guard let key = element("Key", in: entry).flatMap(unescape), !key.isEmpty else {
                throw AuditStorageError(description: "S3's listing has an object without a Key")
            }
            let modified = element("LastModified", in: entry).flatMap(date) ?? Date(timeIntervalSince1970: 0)
            let size = element("Size", in: entry).flatMap { Int($0) } ?? 0
            let etag = element("ETag", in: entry).flatMap(unescape) ?? ""
            page.objects.append(Object(key: key, modified: modified, size: max(0, size), etag: etag))
            rest = rest[close.upperBound...]
        }
        // Outside the Contents elements: a key's own text cannot hold a raw '<'.
        let outside = text.replacingOccurrences(of: "<Contents>[\\s\\S]*?</Contents>", with: "", options: .regularExpression)
        page.isTruncated = element("IsTruncated", in: outside[...]) == "true"
        page.nextContinuationToken = element("NextContinuationToken", in: outside[...]).flatMap(unescape)
        return page
    }

    static func element(_ name: String, in text: Substring) -> String? {
        guard let start = text.range(of: "<\(name)>"), let end = text.range(of: "</\(name)>", range: start.upperBound..<text.endIndex) else { return nil }
        return String(text[start.upperBound..<end.lowerBound])
    }

    /// XML 1.0 §4.6 predefined entities and §4.1 character references; nil for anything else.
    static func unescape(_ text: String) -> String? {
        guard text.contains("&") else { return text }
        var result = ""
        var rest = text[...]
        while let amp = rest.firstIndex(of: "&") {
            result += rest[..<amp]
            guard let semicolon = rest[amp...].firstIndex(of: ";") else { return nil }
            let name = rest[rest.index(after: amp)..<semicolon]
            switch name {
            case "amp": result += "&"
            case "lt": result += "<"
            case "gt": result += ">"
            case "quot": result += "\""
            case "apos": result += "'"
            default:
                let value: UInt32?
                if name.hasPrefix("#x") {
                    value = UInt32(name.dropFirst(2), radix: 16)
                } else if name.hasPrefix("#") {
                    value = UInt32(name.dropFirst(), radix: 10)
                } else {
                    value = nil
                }
                guard let value, let scalar = Unicode.Scalar(value) else { return nil }
                result.unicodeScalars.append(scalar)
            }
            rest = rest[rest.index(after: semicolon)...]
        }
        return result + rest
    }

    private static func date(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}
