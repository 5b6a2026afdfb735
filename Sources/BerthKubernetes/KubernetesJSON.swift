import BerthConfig

/// API server JSON read into ConfigValue, so Berth's configuration and the Kubernetes objects it
/// passes through are one type.
enum BerthConfigJSON {
    static func parse(_ text: String) throws -> ConfigValue {
        try ConfigValue.parse(text, format: .json, source: "Kubernetes API")
    }
}
