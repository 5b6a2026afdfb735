import BerthCBOR
import Testing
@testable import BerthForwardProtocol

@Suite struct ForwardProtocolTests {
    /// The SUCCESS packet ContainerSSH's documentation shows, byte for byte.
    @Test func successPacketMatchesContainerSSHBytes() {
        let expected: [UInt8] = [0xA3, 0x64] + Array("Type".utf8) + [0x01, 0x6C] + Array("ConnectionId".utf8) + [0x00, 0x67] + Array("Payload".utf8) + [0xF6]
        #expect(ForwardPacket(.success).encoded() == expected)
    }

    @Test func packetsRoundTripAcrossArbitraryChunking() throws {
        let packets = [
            ForwardPacket(.setup, payload: ForwardSetup(.portForward, bindHost: "localhost", bindPort: 8080).encoded()),
            ForwardPacket(.newConnection, connectionID: 1, payload: ForwardNewConnection(protocolName: "tcp", connectedAddress: "db", connectedPort: 5432).encoded()),
            ForwardPacket(.data, connectionID: 1, payload: Array(repeating: 7, count: 70_000)),
            ForwardPacket(.closeConnection, connectionID: 1),
            ForwardPacket(.noMoreConnections),
        ]
        let stream = packets.flatMap { $0.encoded() }
        for chunkSize in [1, 3, 64, 4096, stream.count] {
            var reader = ForwardPacketReader()
            var decoded: [ForwardPacket] = []
            var offset = 0
            while offset < stream.count {
                let end = min(offset + chunkSize, stream.count)
                decoded += try reader.feed(stream[offset..<end])
                offset = end
            }
            #expect(decoded == packets)
        }
        let setup = try ForwardSetup(decoding: packets[0].payload!)
        #expect(setup.connectionType == .portForward && setup.bindHost == "localhost" && setup.bindPort == 8080)
    }

    /// Go's decoder matches keys case-insensitively; so does ours.
    @Test func keysMatchCaseInsensitively() throws {
        let value = CBORValue.map([CBORPair(.text("type"), .unsigned(3)), CBORPair(.text("connectionid"), .unsigned(9)), CBORPair(.text("PAYLOAD"), .bytes([1]))])
        #expect(try ForwardPacket(decoding: value) == ForwardPacket(.data, connectionID: 9, payload: [1]))
    }

    @Test func setupReplyCarriesTheBoundPortAndNullMeansAsRequested() {
        #expect(ForwardSetupReply(decoding: ForwardSetupReply(boundPort: 40123).encoded())?.boundPort == 40123)
        #expect(ForwardSetupReply(decoding: nil) == nil)
    }

    @Test(arguments: [
        [UInt8]([0x01]), [0xA1, 0x64] + Array("Type".utf8) + [0x18, 0x63], [0xA1, 0x64] + Array("Type".utf8) + [0x63, 0x61, 0x62, 0x63],
        [0xA2, 0x64] + Array("Type".utf8) + [0x03, 0x67] + Array("Payload".utf8) + [0x07], [0xFF], [0x1C],
    ])
    func wrongShapesAreErrors(bytes: [UInt8]) {
        var reader = ForwardPacketReader()
        #expect(throws: ForwardProtocolError.self) { try reader.feed(bytes) }
    }

    @Test func oversizedPacketIsRefusedNotBuffered() {
        var reader = ForwardPacketReader(maximumPacket: 1024)
        // A byte string header announcing 1 MiB, then more bytes than the limit.
        let bytes: [UInt8] = [0x5A, 0x00, 0x10, 0x00, 0x00] + Array(repeating: 0, count: 2000)
        #expect(throws: ForwardProtocolError.self) { try reader.feed(bytes) }
    }

    /// Random input never crashes the reader: each feed returns packets or throws.
    @Test func randomBytesNeverCrash() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var reader = ForwardPacketReader(maximumPacket: 4096)
            let count = Int.random(in: 1...300, using: &generator)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = try? reader.feed(bytes)
            _ = try? reader.feed(bytes.reversed())
        }
    }
}
