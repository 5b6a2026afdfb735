import Foundation
import Testing

@testable import BerthAudit

@Suite struct S3ListPageTests {
    /// The ListObjectsV2 example of the S3 API reference, with a continuation token and an
    /// escaped key.
    let example = """
        <?xml version="1.0" encoding="UTF-8"?>
        <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Name>bucket</Name>
            <Prefix/>
            <KeyCount>2</KeyCount>
            <MaxKeys>1000</MaxKeys>
            <IsTruncated>true</IsTruncated>
            <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
            <Contents>
                <Key>ExampleObject.txt</Key>
                <LastModified>2013-09-17T18:07:53.000Z</LastModified>
                <ETag>&quot;599bab3ed2c697f1d26842727561fd94&quot;</ETag>
                <Size>857</Size>
                <StorageClass>REDUCED_REDUNDANCY</StorageClass>
            </Contents>
            <Contents>
                <Key>a&amp;b&lt;c&#x2713;&#65;</Key>
                <LastModified>2013-09-17T18:07:54Z</LastModified>
                <ETag>"e1"</ETag>
                <Size>0</Size>
            </Contents>
        </ListBucketResult>
        """

    @Test func readsTheReferenceExample() throws {
        let page = try S3ListPage.parse(Array(example.utf8))
        #expect(page.isTruncated)
        #expect(page.nextContinuationToken == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        #expect(page.objects.map(\.key) == ["ExampleObject.txt", "a&b<c✓A"])
        #expect(page.objects[0].size == 857 && page.objects[0].etag == "\"599bab3ed2c697f1d26842727561fd94\"")
        #expect(page.objects[0].modified == Date(timeIntervalSince1970: 1_379_441_273))
        #expect(page.objects[1].modified == Date(timeIntervalSince1970: 1_379_441_274))
    }

    @Test func lastPageAndEmptyBucket() throws {
        let empty = try S3ListPage.parse(Array("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>".utf8))
        #expect(empty.objects.isEmpty && !empty.isTruncated && empty.nextContinuationToken == nil)
    }

    @Test func refusesWhatIsNotAListing() {
        for bad in [
            "<Error><Code>AccessDenied</Code></Error>", "", "<ListBucketResult><Contents><Key>x</Key>",
            "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
            "<ListBucketResult><Contents><Key>a&bogus;</Key></Contents></ListBucketResult>",
            "<ListBucketResult><Contents><Key>&#xD800;</Key></Contents></ListBucketResult>",
        ] {
            #expect(throws: (any Error).self, "accepted \(bad)") { try S3ListPage.parse(Array(bad.utf8)) }
        }
    }

    /// Random mutations of the example: an answer or an error, never a crash or a hang.
    @Test func fuzzNeverCrashes() {
        let seed: UInt64 = 2022
        var generator = SplitMix(seed)
        let base = Array(example.utf8)
        let pieces = Array("<>/&;#x0123456789ContentsKeyIsTruncated amp lt".utf8)
        for _ in 0..<3_000 {
            var bytes = base
            for _ in 0..<Int.random(in: 1...12, using: &generator) {
                let at = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[at] = pieces.randomElement(using: &generator)!
                case 1: bytes.remove(at: at)
                default: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: at)
                }
                if bytes.isEmpty { break }
            }
            if let page = try? S3ListPage.parse(bytes) {
                #expect(page.objects.allSatisfy { !$0.key.isEmpty && $0.size >= 0 }, "seed \(seed)")
            }
        }
    }

    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        init(_ seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
