#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@_silgen_name("setfsuid") private func setFileSystemUID(_ uid: UInt32) -> Int32
@_silgen_name("setfsgid") private func setFileSystemGID(_ gid: UInt32) -> Int32

/// The account a link's unix-socket forwards act as (docs/security.md, "Unix socket, X11 and agent
/// forwarding"). The agent is root, but a user's `ssh -L …:/path` must reach only the sockets the
/// user could, and the sockets it listens on must be the user's: `connect` and `bind` check and
/// create with the file-system ids, which Linux keeps per thread, so only the calling thread
/// changes and only for the call. Supplementary groups stay the agent's (root's), as they are
/// per process in libc.
struct SocketOwner: Sendable {
    let uid: uid_t
    let gid: gid_t

    func run<T>(_ body: () throws(Sockets.Failure) -> T) throws(Sockets.Failure) -> T {
        let oldGID = setFileSystemGID(gid)
        let oldUID = setFileSystemUID(uid)
        defer {
            _ = setFileSystemUID(UInt32(bitPattern: oldUID))
            _ = setFileSystemGID(UInt32(bitPattern: oldGID))
        }
        return try body()
    }
}

extension Optional where Wrapped == SocketOwner {
    /// Removes a listening socket's file as the account that made it: a user who swapped a
    /// directory on the path for a symlink must not get root to delete a file elsewhere.
    func unlinkSocket(_ path: String) {
        guard let owner = self else {
            unlink(path)
            return
        }
        _ = try? owner.run { () throws(Sockets.Failure) in unlink(path) }
    }

    /// Runs `body` as the owner for unix sockets; tcp needs no ids.
    func run<T>(protocolName: String, _ body: () throws(Sockets.Failure) -> T) throws(Sockets.Failure) -> T {
        guard protocolName == "unix", let owner = self else { return try body() }
        return try owner.run(body)
    }
}
