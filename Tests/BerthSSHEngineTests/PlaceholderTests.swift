import XCTest

final class BerthSSHEnginePlaceholderTests: XCTestCase {
    func testModuleBuilds() {}
}
