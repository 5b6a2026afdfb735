import XCTest

final class BerthSSHCipherPlaceholderTests: XCTestCase {
    func testModuleBuilds() {}
}
