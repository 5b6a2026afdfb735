import Foundation
import Testing
@testable import BerthConfig

@Suite struct LoginUserConfigTests {
    private func read(_ yaml: String) throws -> BerthConfig { try readConfig(minimalAuthYAML + yaml, environment: ProcessInfo.processInfo.environment).config }
    private func problems(_ yaml: String) -> [String] { configProblems(minimalAuthYAML + yaml) }

    @Test func defaultsRunAsTheLoginUserOnTheUserNetwork() throws {
        let config = try read("")
        let user = config.docker.execution.loginUser
        #expect(user.mode == .login && user.uid == 1000 && user.gid == nil && user.homeRoot == "/home" && user.shell == "/bin/bash" && !user.sudo)
        #expect(config.kubernetes.pod.loginUser == user)
        #expect(config.docker.execution.userNetwork == "berth-users" && config.docker.execution.userNetworkFirewall)
    }

    @Test func everyKeyIsRead() throws {
        let config = try read(
            "docker:\n  execution:\n    userNetwork: lab-net\n    userNetworkFirewall: false\n    loginUser:\n      mode: container\n      uid: 2000\n      gid: 100\n      homeRoot: /srv/home\n      shell: /bin/zsh\n      sudo: true\n"
        )
        let user = config.docker.execution.loginUser
        #expect(user.mode == .container && user.uid == 2000 && user.gid == 100 && user.homeRoot == "/srv/home" && user.shell == "/bin/zsh" && user.sudo)
        #expect(config.docker.execution.userNetwork == "lab-net" && !config.docker.execution.userNetworkFirewall)
    }

    @Test func badValuesAreRefusedByName() {
        let found = problems(
            "docker:\n  execution:\n    userNetwork: \"a b\"\n    loginUser:\n      mode: nobody\n      uid: 0\n      gid: 3000000000\n      homeRoot: home\n      shell: \"/bin/sh:x\"\n      colour: red\n"
        )
        #expect(found.contains { $0.hasPrefix("docker.execution.userNetwork: must be a Docker network name") })
        #expect(found.contains { $0.hasPrefix("docker.execution.loginUser.mode: \"nobody\" is not one of login, container") })
        #expect(found.contains { $0.hasPrefix("docker.execution.loginUser.uid:") })
        #expect(found.contains("docker.execution.loginUser.gid: at most 2147483647, got 3000000000"))
        #expect(found.contains { $0.hasPrefix("docker.execution.loginUser.homeRoot: must be an absolute path") })
        #expect(found.contains { $0.hasPrefix("docker.execution.loginUser.shell: must be an absolute path") })
        #expect(found.contains("docker.execution.loginUser.colour: unknown key"))
    }

    @Test func loginModeWithoutTheAgentIsRefusedButTheDefaultFallsBack() throws {
        #expect(
            problems("docker:\n  execution:\n    disableAgent: true\n    loginUser:\n      mode: login\n").contains {
                $0.hasPrefix("docker.execution.loginUser.mode: mode login needs the agent")
            })
        #expect(try read("docker:\n  execution:\n    disableAgent: true\n").docker.execution.disableAgent)
    }
}
