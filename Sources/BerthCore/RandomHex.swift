/// `bytes` random bytes from the system's generator, as lowercase hex: the agent link's secrets
/// and the names of per-container directories that must not be guessed.
public func randomHex(_ bytes: Int) -> String {
    var generator = SystemRandomNumberGenerator()
    let digits = Array("0123456789abcdef")
    var text = ""
    text.reserveCapacity(2 * bytes)
    for _ in 0..<bytes {
        let byte = UInt8.random(in: 0...255, using: &generator)
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0xF)])
    }
    return text
}
