import BerthConfig
import Foundation
import NIOCore

/// The console's pages, scripts and styles (Sources/BerthConsole/Resources, plain files, no build
/// step) and xterm.js from the system (docs/console.md, "xterm.js").
struct ConsoleAssets: Sendable {
    /// Debian's node-xterm: the CommonJS modules of the same xterm.js version. Debian 12's
    /// libjs-xterm ships an xterm.js that only `require`s them, which a browser cannot load, so
    /// the console joins them into one script itself when the directory's own file is such a stub.
    static let nodeXtermDirectory = "/usr/share/nodejs/xterm/lib"

    struct File: Sendable {
        let contentType: String
        let bytes: ByteBuffer
    }

    let files: [String: File]
    let xtermScript: File?
    let xtermStyle: File?

    var hasTerminal: Bool { xtermScript != nil && xtermStyle != nil }

    static let types = ["css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8", "html": "text/html; charset=utf-8", "svg": "image/svg+xml"]

    static func load(xtermDirectory: String) throws -> ConsoleAssets {
        guard let directory = resourceDirectory() else {
            throw ConsoleStartError(message: "the console's pages were not found (Berth_BerthConsole.resources next to the berth binary, or /usr/share/berth/console)")
        }
        var files: [String: File] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            let ext = (name as NSString).pathExtension
            guard let type = types[ext], let data = FileManager.default.contents(atPath: "\(directory)/\(name)") else { continue }
            files[name] = File(contentType: type, bytes: ByteBuffer(bytes: data))
        }
        var style: File?
        if let css = FileManager.default.contents(atPath: "\(xtermDirectory)/xterm.css") {
            style = File(contentType: types["css"]!, bytes: ByteBuffer(bytes: css))
        }
        return ConsoleAssets(files: files, xtermScript: xtermScript(xtermDirectory), xtermStyle: style)
    }

    /// `Berth_BerthConsole.resources/Resources` beside the executable (SwiftPM's layout), or the
    /// packaged copy.
    static func resourceDirectory() -> String? {
        var candidates: [String] = []
        if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath().deletingLastPathComponent() {
            candidates.append(executable.appendingPathComponent("Berth_BerthConsole.resources/Resources").path)
        }
        candidates.append("/usr/share/berth/console")
        return candidates.first { FileManager.default.fileExists(atPath: "\($0)/sessions.html") }
    }

    static func xtermScript(_ directory: String) -> File? {
        let type = types["js"]!
        if let data = FileManager.default.contents(atPath: "\(directory)/xterm.js"), let text = String(data: data, encoding: .utf8), !text.contains("require(") {
            return File(contentType: type, bytes: ByteBuffer(bytes: data))
        }
        guard let bundle = bundleCommonJS(root: nodeXtermDirectory, entry: "public/Terminal") else { return nil }
        return File(contentType: type, bytes: ByteBuffer(string: bundle))
    }

    /// Wraps each module of `root` in a function and adds a minimal `require`, so the browser gets
    /// one script that defines `window.Terminal`.
    static func bundleCommonJS(root: String, entry: String) -> String? {
        guard FileManager.default.fileExists(atPath: "\(root)/\(entry).js"), let walker = FileManager.default.enumerator(atPath: root) else { return nil }
        var script = """
            (function () {
            "use strict";
            var definitions = {}, cache = {};
            function resolve(from, relative) {
              var parts = from.split("/"); parts.pop();
              relative.replace(/\\.js$/, "").split("/").forEach(function (part) {
                if (part === "..") parts.pop(); else if (part !== ".") parts.push(part);
              });
              return parts.join("/");
            }
            function load(name) {
              if (cache[name]) return cache[name].exports;
              var define = definitions[name];
              if (!define) throw new Error("xterm.js module missing: " + name);
              var module = { exports: {} };
              cache[name] = module;
              define(module.exports, function (relative) { return load(resolve(name, relative)); }, module);
              return module.exports;
            }

            """
        for case let path as String in walker where path.hasSuffix(".js") && !path.hasSuffix(".test.js") {
            guard let source = try? String(contentsOfFile: "\(root)/\(path)", encoding: .utf8) else { continue }
            let name = String(path.dropLast(3))
            // A JSON string is a JavaScript string literal.
            script += "definitions[\(ConfigRenderer.compactJSON(.string(name)))] = function (exports, require, module) {\n\(source)\n};\n"
        }
        script += "window.Terminal = load(\"\(entry)\").Terminal;\n})();\n"
        return script
    }
}
