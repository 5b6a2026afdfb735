#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthAgentProtocol

/// The account a link's programs run as (the link's `user` frame, docs/agent-protocol.md
/// "Accounts"): the person who logged in, added to the container's own account files the way
/// `useradd -m` would, so `whoami`, `~`, `~alice` and tools that look the user up all work.
///
/// By hand rather than by running `useradd`: minimal and busybox images have no shadow-utils,
/// and the agent must behave the same in every image.
struct GuestAccount: Equatable {
    var name: String
    var uid: uid_t
    var gid: gid_t
    var home: String
    var shell: String

    struct Failure: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    static let passwdPath = "/etc/passwd"
    static let groupPath = "/etc/group"
    static let shadowPath = "/etc/shadow"

    /// The account for `request`: the container's own entry of that name, or a new one. A
    /// container that does not run the agent as root cannot add or switch accounts: its programs
    /// keep running as the container's user, and the answer says which one that is.
    static func ensure(_ request: AgentUser, root: String = "") throws(Failure) -> GuestAccount {
        guard geteuid() == 0 else {
            let uid = getuid()
            let entry = PasswdFile(text: readText(root + passwdPath) ?? "").entry(uid: uid)
            return GuestAccount(name: entry?.name ?? "", uid: uid, gid: getgid(), home: entry?.home ?? "/", shell: entry?.shell ?? "/bin/sh")
        }
        // Two links into one container (a shared pod) may add the same account at once; the lock
        // file is the one shadow-utils uses, so useradd in the container waits for us too.
        let lock = open(root + "/etc/.pwd.lock", O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if lock >= 0 { _ = flock(lock, LOCK_EX) }
        defer { if lock >= 0 { close(lock) } }
        let passwd = PasswdFile(text: readText(root + passwdPath) ?? "")
        let account: GuestAccount
        if let existing = passwd.entry(named: request.name) {
            account = existing
        } else {
            account = try add(request, passwd: passwd, root: root)
        }
        if account.uid != 0 { try prepareHome(account, root: root) }
        if request.flags & AgentUser.sudo != 0 { try allowSudo(account, root: root) }
        return account
    }

    private static func add(_ request: AgentUser, passwd: PasswdFile, root: String) throws(Failure) -> GuestAccount {
        // A uid the image already uses (an image user 1000) moves the new account to the next
        // free one; its own group follows unless the operator named a different gid.
        var uid = request.uid
        let used = Set(passwd.entries.map(\.uid))
        while used.contains(uid) && uid < UInt32.max - 1 { uid += 1 }
        var gid = request.gid == request.uid ? uid : request.gid
        let groups = GroupFile(text: readText(root + groupPath) ?? "")
        if !groups.gids.contains(gid) {
            if groups.names.contains(request.name) {
                gid = groups.gid(named: request.name) ?? gid
            } else {
                try append("\(request.name):x:\(gid):\n", to: root + groupPath)
            }
        }
        let shell = usableShell(request.shell, root: root)
        let account = GuestAccount(name: request.name, uid: uid, gid: gid, home: request.home, shell: shell)
        try append("\(account.name):x:\(uid):\(gid)::\(account.home):\(shell)\n", to: root + passwdPath)
        // "*": no password works for this account; it only ever logs in through Berth.
        if access(root + shadowPath, F_OK) == 0 {
            try append("\(account.name):*:0:0:99999:7:::\n", to: root + shadowPath)
        }
        return account
    }

    /// The requested shell if the image has it, else bash, else sh (busybox images).
    private static func usableShell(_ requested: String, root: String) -> String {
        for candidate in [requested, "/bin/bash", "/bin/sh"] where access(root + candidate, X_OK) == 0 {
            return candidate
        }
        return requested
    }

    /// A new home gets the image's /etc/skel. An existing one (a volume mounted there) is left
    /// as it is, except that a root-owned directory is given to the user: a fresh volume is
    /// created root-owned, and a home the user cannot write breaks every tool.
    private static func prepareHome(_ account: GuestAccount, root: String) throws(Failure) {
        let home = root + account.home
        var info = stat()
        if lstat(home, &info) == 0 {
            if info.st_mode & S_IFMT == S_IFDIR && info.st_uid == 0 {
                guard chown(home, account.uid, account.gid) == 0 else { throw Failure("cannot give \(account.home) to \(account.name): \(AgentError.reason)") }
            }
            return
        }
        try makeParents(of: home)
        guard mkdir(home, 0o750) == 0 else { throw Failure("cannot create \(account.home): \(AgentError.reason)") }
        copySkeleton(from: root + "/etc/skel", to: home, account)
        guard chown(home, account.uid, account.gid) == 0 else { throw Failure("cannot give \(account.home) to \(account.name): \(AgentError.reason)") }
    }

    private static func makeParents(of path: String) throws(Failure) {
        var prefix = ""
        for component in path.split(separator: "/").dropLast() {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw Failure("cannot create \(prefix): \(AgentError.reason)") }
        }
    }

    /// Directories and regular files only; links in a skeleton are skipped rather than followed.
    private static func copySkeleton(from source: String, to target: String, _ account: GuestAccount) {
        guard let directory = opendir(source) else { return }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let from = source + "/" + name, to = target + "/" + name
            var info = stat()
            guard lstat(from, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                guard mkdir(to, info.st_mode & 0o777) == 0 else { continue }
                copySkeleton(from: from, to: to, account)
            case S_IFREG:
                guard let contents = readBytes(from) else { continue }
                let fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, info.st_mode & 0o777)
                guard fd >= 0 else { continue }
                _ = writeAll(fd, contents)
                close(fd)
            default:
                continue
            }
            _ = lchown(to, account.uid, account.gid)
        }
    }

    /// `sudo` without a password, when the image has sudo. The file is the agent's own, so a
    /// second login rewrites rather than adds to it.
    private static func allowSudo(_ account: GuestAccount, root: String) throws(Failure) {
        let directory = root + "/etc/sudoers.d"
        guard access(directory, F_OK) == 0 else { return }
        let path = directory + "/berth-login-user"
        switch FileTarget.openForWriting(path, mode: 0o440) {
        case .failure(let error): throw Failure(error.message)
        case .success(let fd):
            defer { close(fd) }
            guard writeAll(fd, Array("\(account.name) ALL=(ALL:ALL) NOPASSWD: ALL\n".utf8)) else {
                throw Failure("cannot write \(path): \(AgentError.reason)")
            }
        }
    }

    /// Appends a line, first ending an unterminated last line, without following a symlink.
    private static func append(_ line: String, to path: String) throws(Failure) {
        let existing = readBytes(path) ?? []
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure("cannot add the account to \(path): \(AgentError.reason)") }
        defer { close(fd) }
        let text = (existing.last.map { $0 == UInt8(ascii: "\n") } ?? true ? "" : "\n") + line
        guard writeAll(fd, Array(text.utf8)) else { throw Failure("cannot add the account to \(path): \(AgentError.reason)") }
    }

    static func readText(_ path: String) -> String? { readBytes(path).map { String(decoding: $0, as: UTF8.self) } }

    static func readBytes(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return count == 0 ? result : nil }
            result += buffer[0..<count]
        }
    }
}

/// /etc/passwd: `name:password:uid:gid:gecos:home:shell` per line; malformed lines are ignored.
struct PasswdFile {
    let entries: [GuestAccount]

    init(text: String) {
        entries = text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 7, let uid = UInt32(fields[2]), let gid = UInt32(fields[3]) else { return nil }
            return GuestAccount(name: String(fields[0]), uid: uid, gid: gid, home: String(fields[5]), shell: String(fields[6]))
        }
    }

    func entry(named name: String) -> GuestAccount? { entries.first { $0.name == name } }
    func entry(uid: uid_t) -> GuestAccount? { entries.first { $0.uid == uid } }
}

/// /etc/group: `name:password:gid:members` per line.
struct GroupFile {
    private let groups: [(name: String, gid: UInt32)]

    init(text: String) {
        groups = text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", omittingEmptySubsequences: false)
            guard fields.count >= 3, let gid = UInt32(fields[2]) else { return nil }
            return (String(fields[0]), gid)
        }
    }

    var gids: Set<UInt32> { Set(groups.map(\.gid)) }
    var names: Set<String> { Set(groups.map(\.name)) }
    func gid(named name: String) -> UInt32? { groups.first { $0.name == name }?.gid }
}
