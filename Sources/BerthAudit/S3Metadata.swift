import Foundation

/// Values of `x-amz-meta-*` headers. The username is whatever the client typed: CR/LF would
/// break the request (or be refused by the HTTP client before it is sent), non-ASCII is not
/// portable in HTTP headers, and SigV4 folds runs of spaces, which servers do not all agree
/// on. Such values go as an RFC 2047 encoded word, which S3 decodes when it stores the
/// metadata ("User-defined object metadata" in the S3 user guide); plain values go as they are.
enum S3Metadata {
    static func headerValue(_ text: String) -> String {
        isPlain(text) ? text : "=?UTF-8?B?\(Data(text.utf8).base64EncodedString())?="
    }

    /// Printable ASCII without leading, trailing or repeated spaces, and not itself something
    /// S3 would decode as an encoded word.
    static func isPlain(_ text: String) -> Bool {
        guard !text.hasPrefix(" "), !text.hasSuffix(" "), !text.contains("  "), !text.contains("=?") else { return false }
        return text.utf8.allSatisfy { (0x20...0x7E).contains($0) }
    }
}
