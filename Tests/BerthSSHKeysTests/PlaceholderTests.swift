import XCTest

final class BerthSSHKeysPlaceholderTests: XCTestCase {
    func testModuleBuilds() {}
}
