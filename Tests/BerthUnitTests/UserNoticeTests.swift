import BerthCore
import Logging
import Testing

@Suite struct UserNoticeTests {
    @Test func theLineCarriesTheCodeAndTheConnectionButNoEngineText() {
        var logger = Logger(label: "test")
        #expect(
            UserNotice.line("cannot start your pod", code: "KUBERNETES_API_ERROR", logger: logger)
                == "Berth: cannot start your pod (KUBERNETES_API_ERROR)\r\n")
        logger[metadataKey: LogKey.connectionID] = "0123456789abcdef0123456789abcdef"
        #expect(
            UserNotice.line("cannot start your container", code: "DOCKER_ENGINE_UNAVAILABLE", logger: logger)
                == "Berth: cannot start your container (DOCKER_ENGINE_UNAVAILABLE, connection 0123456789abcdef0123456789abcdef)\r\n")
    }
}
