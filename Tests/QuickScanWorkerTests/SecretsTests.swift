import FalconAPI
import FalconEmulator
import Foundation
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A distinctive secret and the tokens issued for it must never reach a log line, an error
/// message, the database or its WAL.
@Suite(.timeLimit(.minutes(2)))
struct SecretsTests {
    static let secret = "Zq7SecretNeverPrintedAnywhere0123456789xy"

    /// Any run of 96 hex digits: the emulator's bearer tokens.
    static func containsToken(_ text: String) -> Bool {
        text.firstMatch(of: /[0-9a-f]{96}/) != nil
    }

    func scan(_ ws: Workspace, outputs: [String]) throws {
        for text in outputs {
            #expect(!text.contains(Self.secret), "secret in output")
            #expect(!Self.containsToken(text), "token in output")
        }
        for suffix in ["", "-wal"] {
            guard let data = FileManager.default.contents(atPath: ws.database + suffix) else { continue }
            let text = String(decoding: data, as: UTF8.self)
            #expect(!text.contains(Self.secret), "secret in database\(suffix)")
            #expect(!Self.containsToken(text), "token in database\(suffix)")
        }
    }

    @Test func aRunWithTraceLoggingAndFaultsLeaksNothing() async throws {
        let ws = try Workspace()
        try ws.put("a.txt", Array("a".utf8))
        try ws.put("eicar.com", Array(SampleContent.eicar.utf8))
        let config = try ws.dir.write("config.json", """
            {"inboxes":[{"path":"inbox"}],"settle_seconds":0,"database":"db.sqlite","scan":{"poll_interval_seconds":0.05}}
            """)
        try await withEmulator({
            $0.credentials = ["0123456789abcdef0123456789abcdef": Self.secret]
            $0.faults = [try! FaultRule.parse("expire-tokens:every=3"), try! FaultRule.parse("5xx:status=503,every=4"), try! FaultRule.parse("429:retry-after=1,count=1")]
        }) { emulator in
            let env = ["FALCON_CLIENT_ID": "0123456789abcdef0123456789abcdef", "FALCON_CLIENT_SECRET": Self.secret, "FALCON_BASE_URL": emulator.baseURL]
            var outputs: [String] = []
            for format in ["text", "json"] {
                let run = try await runProcess(quickscanExecutable(), ["run", "--once", "--config", config, "--log-level", "trace", "--log-format", format], environment: env)
                #expect(run.status == 1 || run.status == 0, "\(run.stderr)")
                outputs += [run.stdout, run.stderr]
            }
            for args in [["quota", "--log-level", "trace"], ["scans", "x_y", "--log-level", "trace"], ["upload", "/nonexistent", "--log-level", "trace"]] {
                let result = try await runProcess(quickscanExecutable(), args, environment: env)
                outputs += [result.stdout, result.stderr]
            }
            // Refused credentials: the error names the client id, never the secret.
            let refused = try await runProcess(quickscanExecutable(), ["quota"], environment: env.merging(["FALCON_CLIENT_SECRET": Self.secret + "WRONG"]) { $1 })
            #expect(refused.status == 3)
            outputs += [refused.stdout, refused.stderr]
            let check = try await runProcess(quickscanExecutable(), ["config", "check", "--config", config], environment: env)
            outputs += [check.stdout, check.stderr]
            try scan(ws, outputs: outputs)
        }
    }

    @Test func secretInAConfigFileNeverPrinted() async throws {
        let ws = try Workspace()
        let config = try ws.dir.write("config.json", """
            {"falcon":{"client_id":"0123456789abcdef0123456789abcdef","client_secret":"\(Self.secret)"},"inboxes":[{"path":"inbox"}],"database":"db.sqlite","settle_seconds":0}
            """)
        chmod(config, 0o600)
        try ws.put("a.txt", Array("a".utf8))
        try await withEmulator({ $0.credentials = ["0123456789abcdef0123456789abcdef": Self.secret] }) { emulator in
            let run = try await runProcess(quickscanExecutable(), ["run", "--once", "--config", config, "--base-url", emulator.baseURL, "--log-level", "trace"])
            #expect(run.status == 0, "\(run.stderr)")
            let check = try await runProcess(quickscanExecutable(), ["config", "check", "--config", config])
            try scan(ws, outputs: [run.stdout, run.stderr, check.stdout, check.stderr])
        }
    }

    @Test func errorsAndCredentialsDescribeWithoutTheSecret() throws {
        let credentials = FalconCredentials(clientID: "id", clientSecret: Self.secret)
        #expect(!"\(credentials)".contains(Self.secret))
        #expect(!String(reflecting: credentials).contains(Self.secret))
        let configuration = FalconClientConfiguration(credentials: credentials, baseURL: "http://127.0.0.1:9")
        #expect(!"\(configuration)".contains(Self.secret))
    }
}

/// TLS certificate verification is on by default; turning it off is explicit and logged.
@Suite(.timeLimit(.minutes(2)))
struct TLSTests {
    @Test func selfSignedServerIsRefusedUnlessVerificationIsOff() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else { return }
        let dir = try TemporaryDirectory()
        let cert = dir.path + "/cert.pem", key = dir.path + "/key.pem"
        let made = try await runProcess("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"])
        #expect(made.status == 0, "\(made.stderr)")
        let port = 20000 + Int.random(in: 0..<20000)
        let server = ServerBox()
        try await onDedicatedThread {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            p.arguments = ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", cert, "-key", key, "-www", "-quiet"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            server.process = p
            // Ready when the port accepts a connection.
            for _ in 0..<100 {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = in_port_t(UInt16(port).bigEndian)
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                close(fd)
                if connected == 0 { break }
                usleep(50_000)
            }
        }
        defer { server.process?.terminate() }
        let env = ["FALCON_CLIENT_ID": "a", "FALCON_CLIENT_SECRET": "b", "FALCON_BASE_URL": "https://127.0.0.1:\(port)"]
        let verified = try await runProcess(quickscanExecutable(), ["quota", "--timeout", "3"], environment: env)
        #expect(verified.status == 3, "\(verified.stderr)")
        #expect(verified.stderr.lowercased().contains("certificate") || verified.stderr.contains("handshake") || verified.stderr.contains("TLS"), "\(verified.stderr)")
        let unverified = try await runProcess(quickscanExecutable(), ["quota", "--insecure-skip-tls-verify", "--timeout", "3"], environment: env)
        // The handshake now succeeds (openssl's test server is no Falcon API, so the call still fails).
        #expect(unverified.stderr.contains("TLS certificate verification is OFF"), "\(unverified.stderr)")
        #expect(!unverified.stderr.lowercased().contains("certificate verify"), "\(unverified.stderr)")
        #expect(!verified.stderr.contains("verification is OFF"))
    }
}

final class ServerBox: @unchecked Sendable {
    var process: Process?
}
