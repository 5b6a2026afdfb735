import Testing
@testable import BerthConfig

@Suite struct ConfigWebhookPolicyTests {
    private let file =
        "auth:\n  password:\n    method: webhook\n    webhook:\n      url: http://127.0.0.1:8080\n"
        + "kubernetes:\n  pod:\n    spec:\n      containers:\n        - name: shell\n          image: busybox\n"
    private let berthCapabilities: Set<String> = ["CHOWN", "KILL", "SETUID", "SETGID"]

    /// The refused key paths of `answer` (JSON, the webhook's `config`) over the test file.
    private func refused(_ answer: String, allow: Set<ConfigWebhookPermission> = [], file extra: String = "") throws -> [String] {
        let base = try ConfigValue.parse(file + extra, format: .yaml, source: "test.yaml")
        let overlay = try ConfigValue.parse(answer, format: .json, source: "answer")
        let (static_, _) = try ConfigReader.read(base)
        let (merged, _) = try ConfigReader.read(base.merging(overlay))
        let policy = ConfigWebhookPolicy(allow: allow, ordinaryCapabilities: berthCapabilities)
        return policy.refusals(answer: overlay, base: static_, merged: merged).map(\.path)
    }

    private func host(_ json: String) -> String { #"{"docker": {"execution": {"host": \#(json)}}}"# }
    private func pod(_ json: String) -> String { #"{"kubernetes": {"pod": {"spec": \#(json)}}}"# }

    @Test func ordinarySettingsPass() throws {
        let answer = #"""
            {"docker": {"execution": {"container": {"image": "busybox", "Env": ["A=1"], "User": "1000"}, "mode": "session",
              "host": {"Memory": 1073741824, "PidsLimit": 100, "Binds": ["home-alice:/home/alice"], "NetworkMode": "bridge",
                       "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data"}, {"Type": "tmpfs", "Target": "/tmp"}],
                       "CapAdd": ["CHOWN", "cap_kill"], "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges:true"]},
              "shellCommand": ["/bin/sh"]}, "timeouts": {"containerStart": "30s"}},
             "kubernetes": {"pod": {"spec": {"containers": [{"name": "shell", "image": "busybox",
               "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
                                   "seccompProfile": {"type": "RuntimeDefault"}}}],
               "automountServiceAccountToken": false, "volumes": [{"name": "x", "emptyDir": {}}]}}},
             "security": {"env": {"mode": "enable"}}}
            """#
        #expect(try refused(answer) == [])
    }

    @Test func privilegedIsRefusedInAnyLetterCaseUnlessAllowed() throws {
        for key in ["Privileged", "privileged", "PRIVILEGED"] {
            #expect(try refused(host(#"{"\#(key)": true}"#)) == ["docker.execution.host.\(key)"])
        }
        #expect(try refused(host(#"{"Privileged": false}"#)) == [])
        #expect(try refused(host(#"{"Privileged": true}"#), allow: [.privileged]) == [])
        // Inside the container object too (older engines read host keys there), and nested.
        #expect(
            try refused(#"{"docker": {"execution": {"container": {"image": "x", "HostConfig": {"privileged": true}}}}}"#)
                == ["docker.execution.container.HostConfig.privileged"])
    }

    @Test func hostMountsAreRefused() throws {
        #expect(try refused(host(#"{"Binds": ["vol:/v", "/etc:/host-etc:ro", "./x:/x"]}"#)) == ["docker.execution.host.Binds[1]", "docker.execution.host.Binds[2]"])
        #expect(
            try refused(host(#"{"mounts": [{"type": "bind", "source": "/", "target": "/host"}, {"Type": "BIND", "Source": "/", "Target": "/h"}]}"#))
                == ["docker.execution.host.mounts[0]", "docker.execution.host.mounts[1]"])
        let driverBind = #"{"Mounts": [{"Type": "volume", "Target": "/e", "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"o": "bind", "device": "/etc"}}}}]}"#
        #expect(try refused(host(driverBind)) == ["docker.execution.host.Mounts[0]"])
        #expect(try refused(host(#"{"VolumesFrom": ["other-user"]}"#)) == ["docker.execution.host.VolumesFrom"])
        #expect(try refused(#"{"docker": {"execution": {"agentSocketRoot": "/etc"}}}"#) == ["docker.execution.agentSocketRoot"])
        #expect(try refused(pod(#"{"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}"#)) == ["kubernetes.pod.spec.volumes[0].hostPath"])
        #expect(
            try refused(
                pod(#"{"volumes": [{"name": "n", "nfs": {"server": "10.0.0.1", "path": "/"}}, {"name": "f", "flexVolume": {"driver": "x"}}, {"name": "e", "emptyDir": {}}]}"#))
                == ["kubernetes.pod.spec.volumes[0].nfs", "kubernetes.pod.spec.volumes[1].flexVolume"])
        #expect(try refused(host(#"{"Binds": ["/etc:/host-etc:ro"]}"#), allow: [.hostMounts]) == [])
    }

    @Test func hostNamespacesAreRefused() throws {
        for key in ["NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode", "pidmode"] {
            #expect(try refused(host(#"{"\#(key)": "host"}"#)) == ["docker.execution.host.\(key)"])
            #expect(try refused(host(#"{"\#(key)": "container:abc"}"#)) == ["docker.execution.host.\(key)"])
        }
        #expect(try refused(host(#"{"NetworkMode": "HOST"}"#)) == ["docker.execution.host.NetworkMode"])
        #expect(try refused(host(#"{"PortBindings": {"22/tcp": [{"HostPort": "2200"}]}}"#)) == ["docker.execution.host.PortBindings"])
        #expect(try refused(#"{"docker": {"execution": {"network": {"EndpointsConfig": {"host": {}}}}}}"#) == ["docker.execution.network.EndpointsConfig.host"])
        #expect(
            try refused(pod(#"{"hostNetwork": true, "hostPID": true, "hostIPC": true, "containers": [{"name": "s", "ports": [{"containerPort": 22, "hostPort": 22}]}]}"#))
                == ["kubernetes.pod.spec.hostNetwork", "kubernetes.pod.spec.hostPID", "kubernetes.pod.spec.hostIPC", "kubernetes.pod.spec.containers[0].ports[0].hostPort"])
        #expect(try refused(host(#"{"NetworkMode": "host"}"#), allow: [.hostNamespaces]) == [])
    }

    @Test func devicesCapabilitiesAndSecurityOptionsAreRefused() throws {
        #expect(
            try refused(host(#"{"Devices": [{"PathOnHost": "/dev/sda"}], "DeviceRequests": [{"Count": -1}], "DeviceCgroupRules": ["a *:* rwm"]}"#))
                == ["docker.execution.host.Devices", "docker.execution.host.DeviceRequests", "docker.execution.host.DeviceCgroupRules"])
        #expect(
            try refused(host(#"{"CapAdd": ["CHOWN", "SYS_ADMIN", "CAP_NET_RAW", "ALL"]}"#))
                == ["docker.execution.host.CapAdd[1]", "docker.execution.host.CapAdd[2]", "docker.execution.host.CapAdd[3]"])
        #expect(try refused(host(#"{"capdrop": []}"#)) == ["docker.execution.host.capdrop"])
        #expect(try refused(host(#"{"CapAdd": ["SYS_ADMIN"]}"#), allow: [.capabilities]) == [])
        for options in [#"[]"#, #"["seccomp=unconfined", "no-new-privileges"]"#, #"["apparmor:unconfined"]"#, #"["label=disable"]"#] {
            #expect(try refused(host(#"{"SecurityOpt": \#(options)}"#)) == ["docker.execution.host.SecurityOpt"])
        }
        #expect(
            try refused(host(#"{"CgroupParent": "/", "Runtime": "runc-unsafe", "MaskedPaths": [], "OomKillDisable": true, "OomScoreAdj": -1000}"#))
                == [
                    "docker.execution.host.CgroupParent", "docker.execution.host.Runtime", "docker.execution.host.MaskedPaths",
                    "docker.execution.host.OomKillDisable", "docker.execution.host.OomScoreAdj",
                ])
        #expect(try refused(host(#"{"OomScoreAdj": 500, "OomKillDisable": false}"#)) == [])
        #expect(try refused(host(#"{"SecurityOpt": ["seccomp=unconfined"]}"#), allow: [.securityOptions]) == [])
    }

    @Test func podSecurityContextsAndServiceAccountsAreRefused() throws {
        let spec = #"""
            {"serviceAccountName": "admin", "automountServiceAccountToken": true, "nodeName": "master-1",
             "securityContext": {"seccompProfile": {"type": "Unconfined"}},
             "initContainers": [{"name": "i", "securityContext": {"privileged": true}}],
             "containers": [{"name": "s", "securityContext": {"allowPrivilegeEscalation": true, "capabilities": {"add": ["SYS_ADMIN"]}, "procMount": "Unmasked"}}]}
            """#
        #expect(
            try refused(pod(spec)) == [
                "kubernetes.pod.spec.serviceAccountName", "kubernetes.pod.spec.automountServiceAccountToken", "kubernetes.pod.spec.nodeName",
                "kubernetes.pod.spec.securityContext.seccompProfile", "kubernetes.pod.spec.initContainers[0].securityContext.privileged",
                "kubernetes.pod.spec.containers[0].securityContext.allowPrivilegeEscalation", "kubernetes.pod.spec.containers[0].securityContext.capabilities.add[0]",
                "kubernetes.pod.spec.containers[0].securityContext.procMount",
            ])
        #expect(try refused(pod(spec), allow: [.serviceAccount, .nodeName, .securityOptions, .privileged, .capabilities]) == [])
        #expect(
            try refused(#"{"kubernetes": {"pod": {"metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/shell": "unconfined"}}}}}"#)
                == ["kubernetes.pod.metadata.annotations.container.apparmor.security.beta.kubernetes.io/shell"])
    }

    @Test func backendEndpointsAndCredentialsAreRefusedWhenTheyChange() throws {
        // A Kubernetes configuration must name its namespace; that alone is an ordinary setting.
        let toKubernetes = #"{"backend": "kubernetes", "kubernetes": {"pod": {"metadata": {"namespace": "users"}}}}"#
        #expect(try refused(toKubernetes) == ["backend"])
        #expect(try refused(#"{"backend": "docker"}"#) == [], "the file's own value is no change")
        #expect(try refused(toKubernetes, allow: [.backend]) == [])
        // Berth's own isolation settings.
        #expect(
            try refused(#"{"docker": {"execution": {"userNetwork": "bridge", "userNetworkFirewall": false, "loginUser": {"sudo": true, "uid": 2000}}}}"#)
                == ["docker.execution.userNetwork", "docker.execution.userNetworkFirewall", "docker.execution.loginUser.sudo"])
        #expect(try refused(#"{"docker": {"execution": {"userNetwork": "bridge", "loginUser": {"sudo": true}}}}"#, allow: [.network, .securityOptions]) == [])
        #expect(
            try refused(#"{"docker": {"connection": {"host": "tcp://10.0.0.1:2375", "cert": "/etc/berth/cert.pem", "key": "/root/.ssh/id_rsa"}}}"#)
                == ["docker.connection.host", "docker.connection.cert", "docker.connection.key"])
        #expect(try refused(#"{"docker": {"connection": {"host": "unix:///var/run/docker.sock"}}}"#) == [], "the default is no change")
        #expect(
            try refused(
                #"{"kubernetes": {"connection": {"host": "https://10.0.0.1:6443", "bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token", "insecure": true}}}"#)
                == ["kubernetes.connection.host", "kubernetes.connection.insecure", "kubernetes.connection.bearerTokenFile"])
        #expect(try refused(#"{"kubernetes": {"connection": {"host": "https://10.0.0.1:6443"}}}"#, allow: [.engineEndpoint]) == [])
        let proxy =
            #"{"sshproxy": {"server": "10.0.0.9", "port": 2022, "username": "root", "privateKey": "/etc/ssh/ssh_host_ed25519_key", "allowedHostKeyFingerprints": ["SHA256:x"]}}"#
        #expect(try refused(proxy) == ["sshproxy.server", "sshproxy.port", "sshproxy.allowedHostKeyFingerprints", "sshproxy.username", "sshproxy.privateKey"])
        #expect(try refused(proxy, allow: [.proxyTarget, .credentials]) == [])
    }

    @Test func serverWideSectionsCannotBeOpened() throws {
        let all = Set(ConfigWebhookPermission.allCases)
        #expect(try refused(#"{"audit": {"enable": true, "format": "binary", "storage": "file", "file": {"directory": "/etc"}}}"#, allow: all) == ["audit"])
        #expect(try refused(#"{"ssh": {"hostkeys": ["/etc/shadow"]}, "log": {"destination": "file", "file": "/etc/passwd"}}"#, allow: all) == ["ssh", "log"])
        #expect(try refused(#"{"ssh": {"listen": "0.0.0.0:2222"}}"#) == [], "the default is no change")
        #expect(try refused(#"{"console": {"showWatching": false}}"#, allow: all) == ["console"])
    }

    @Test func theOperatorsOwnCapabilitiesAndValuesStayOrdinary() throws {
        let policy = ConfigWebhookPolicy(allow: [], ordinaryCapabilities: ["cap_chown"])
        #expect(policy.ordinaryCapabilities == ["CHOWN"])
    }

    @Test func allowIsReadAndUnknownNamesAreRefusedAtLoad() throws {
        let (config, _) = try ConfigReader.read(try ConfigValue.parse(file + "configserver:\n  allow: [privileged, hostMounts]\n", format: .yaml, source: "t"))
        #expect(config.configserver.allow == [.privileged, .hostMounts])
        #expect(throws: ConfigError(path: "configserver.allow[1]", "\"hostmounts\" is not one of \(ConfigWebhookPermission.allCases.map(\.rawValue).joined(separator: ", "))")) {
            _ = try ConfigReader.read(try ConfigValue.parse(file + "configserver:\n  allow: [privileged, hostmounts]\n", format: .yaml, source: "t"))
        }
    }
}
