import XCTest

final class BerthSSHKexPlaceholderTests: XCTestCase {
    func testModuleBuilds() {}
}
