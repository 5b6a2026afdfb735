import BerthCore
import NIOCore

/// Relays one forwarded connection between the client's channel and an upstream channel until
/// either side closes: bytes and EOF both ways, then both channels closed.
enum ForwardBridge {
    static func run(downstream: any ForwardChannel, upstream: UpstreamChannel) {
        // The upstream channel is closed only after the client's last bytes went up: closing it
        // as soon as the client's channel closes would let CLOSE overtake input still queued here.
        Task {
            for await chunk in downstream.input {
                do { try await upstream.write(chunk) } catch { break }
            }
            upstream.sendEOF()
            await downstream.waitClosed()
            upstream.close()
        }
        Task {
            for await event in upstream.events {
                switch event {
                case .data(let bytes):
                    do { try await downstream.write(bytes) } catch {
                        upstream.close()
                        return
                    }
                    upstream.consumed(bytes.readableBytes)
                case .extendedData(let bytes, _):
                    upstream.consumed(bytes.readableBytes)
                case .eof:
                    await downstream.closeWrite()
                case .request:
                    break
                case .closed:
                    break
                }
            }
            await downstream.close()
        }
    }
}
