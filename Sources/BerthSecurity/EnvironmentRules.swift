/// The rules for client `env` requests that hold whatever the `security.env` filter says
/// (docs/security.md, "Environment requests").
public enum EnvironmentRules {
    /// POSIX shell names, `[A-Za-z_][A-Za-z0-9_]*`. Checked before the allow/deny lists: the
    /// backends build `NAME=VALUE` strings, so `LD_PRELOAD=/x.so:` with any value would pass
    /// a deny list for `LD_PRELOAD` and still set it; `BASH_FUNC_ls%%` would define a function.
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.utf8.first, first == UInt8(ascii: "_") || isLetter(first) else { return false }
        return name.utf8.allSatisfy { $0 == UInt8(ascii: "_") || isLetter($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
    }

    /// With `forceCommand` the operator decides what runs; these variables would let the user
    /// change what that command does (load code, run shell code, redirect lookups). Without
    /// `forceCommand` the user runs anything anyway, so they are not refused there. The lists
    /// are space-separated words because they are variable names, not message codes.
    static let forcedCommandDenied: Set<String> = words(
        // Shell start-up files and expansions: bash sources BASH_ENV for `bash -c`, sh and
        // interactive bash in POSIX mode source ENV; SHELLOPTS/BASHOPTS turn on xtrace and
        // friends, and the prompts (PS4 under xtrace) expand $(…); IFS changes word splitting;
        // HISTFILE makes an interactive shell write where the user says.
        "BASH_ENV ENV SHELLOPTS BASHOPTS PS0 PS1 PS2 PS3 PS4 PROMPT_COMMAND IFS HISTFILE"
            // Where commands and glibc's loadable modules are found.
            + " PATH GCONV_PATH LOCPATH NLSPATH"
            // Interpreter start-up hooks that load code from a path or an option string.
            + " PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONWARNINGS PERL5LIB PERLLIB PERL5OPT RUBYLIB RUBYOPT"
            + " NODE_OPTIONS NODE_PATH JAVA_TOOL_OPTIONS")

    /// Prefixes: the dynamic loader (`LD_PRELOAD`, `LD_LIBRARY_PATH`, `LD_AUDIT`, …), bash's
    /// exported functions, and git's settings (`GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n` set any
    /// option, `core.fsmonitor` or `core.sshCommand` included, for a forced git-shell).
    static let forcedCommandDeniedPrefixes = ["LD_", "BASH_FUNC_", "GIT_"]

    /// Sent by git clients (`SendEnv GIT_PROTOCOL`) to ask for protocol v2; it selects a wire
    /// format only.
    static let forcedCommandAllowed: Set<String> = ["GIT_PROTOCOL"]

    /// Whether a forced command refuses `name=value`. A value starting with `() {` is how bash
    /// before Shellshock's fix imported functions from any variable.
    public static func deniedUnderForcedCommand(name: String, value: String) -> Bool {
        if forcedCommandAllowed.contains(name) { return false }
        if forcedCommandDenied.contains(name) || forcedCommandDeniedPrefixes.contains(where: name.hasPrefix) { return true }
        return value.hasPrefix("() {")
    }

    private static func words(_ text: String) -> Set<String> { Set(text.split(separator: " ").map(String.init)) }
}
