import Foundation

/// A configuration as read from disk: typed, plus the raw tree the config webhook merges over.
public struct LoadedConfig: Sendable {
    public var config: BerthConfig
    public var raw: ConfigValue
    public var warnings: [String]
}

public enum ConfigLoader {
    public static func load(path: String) throws -> LoadedConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(path: "", "cannot read \(path): \((error as NSError).localizedDescription)")
        }
        return try parse(text, format: ConfigFormat(path: path), source: path)
    }

    public static func parse(_ text: String, format: ConfigFormat, source: String) throws -> LoadedConfig {
        let raw = try ConfigValue.parse(text, format: format, source: source)
        let (config, warnings) = try ConfigReader.read(raw)
        return LoadedConfig(config: config, raw: raw, warnings: warnings)
    }
}

extension ConfigValue {
    /// Deep merge for per-user configuration: maps merge key by key, while lists and scalars
    /// from `overlay` replace what was there.
    public func merging(_ overlay: ConfigValue) -> ConfigValue {
        guard case .object(var base) = self, case .object(let top) = overlay else { return overlay }
        for (key, value) in top {
            if let index = base.lastIndex(where: { $0.key == key }) {
                base[index].value = base[index].value.merging(value)
            } else {
                base.append((key, value))
            }
        }
        return .object(base)
    }
}
