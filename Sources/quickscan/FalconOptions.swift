import ArgumentParser
import FalconAPI
import Foundation
import Logging
import QuickScanWorker

/// Options shared by every command that talks to the Falcon API.
struct FalconOptions: ParsableArguments {
    @Option(help: "Falcon cloud: us-1, us-2, eu-1, us-gov-1, us-gov-2 or auto (default: FALCON_CLOUD, else us-1).")
    var cloud: String?

    @Option(name: .customLong("base-url"), help: "API base URL overriding the cloud's host, e.g. the emulator's (default: FALCON_BASE_URL).")
    var baseURL: String?

    @Flag(help: "Print the API's JSON reply instead of a table.")
    var json = false

    @Flag(help: "Do not verify the API's TLS certificate (lab proxies only; logged as a warning).")
    var insecureSkipTLSVerify = false

    @Flag(help: "Allow a plain http:// base URL to a host other than this machine (the client secret travels in clear).")
    var allowPlainHTTP = false

    @Option(help: "Seconds one HTTP request may take.")
    var timeout: Double = 60

    @Option(help: "Log level on stderr: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "warning"

    @Option(help: "Log format on stderr: text or json (one object per line).")
    var logFormat: String = "text"

    func validate() throws {
        if let cloud, FalconCloud(name: cloud) == nil {
            throw ValidationError("--cloud \(cloud) is not one of us-1, us-2, eu-1, us-gov-1, us-gov-2, auto")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level \(logLevel) is not one of trace, debug, info, notice, warning, error, critical")
        }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format must be text or json") }
    }

    /// The client configuration from flags and the environment.
    func clientConfiguration(environment: [String: String] = ProcessInfo.processInfo.environment) throws(FalconError) -> FalconClientConfiguration {
        let credentials = try FalconCredentials.fromEnvironment(environment)
        let cloudName = cloud ?? environment["FALCON_CLOUD"].flatMap { $0.isEmpty ? nil : $0 }
        var chosenCloud = FalconCloud.us1
        if let cloudName {
            guard let parsed = FalconCloud(name: cloudName) else {
                throw FalconError(kind: .configuration, message: "FALCON_CLOUD=\(cloudName) is not one of us-1, us-2, eu-1, us-gov-1, us-gov-2, auto")
            }
            chosenCloud = parsed
        }
        let base = baseURL ?? environment["FALCON_BASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
        // Interactive commands give up sooner than the worker: 4 attempts within a minute.
        var configuration = FalconClientConfiguration(
            credentials: credentials, cloud: chosenCloud, baseURL: base, requestTimeout: timeout,
            retry: RetryPolicy(maxAttempts: 4, deadline: 60))
        configuration.verifyTLSCertificates = !insecureSkipTLSVerify
        configuration.allowPlainHTTP = allowPlainHTTP
        return configuration
    }

    /// Runs `body` with a client, revoking its token afterwards; Falcon errors become one line
    /// on stderr and the documented exit code.
    func withClient(_ body: (HTTPFalconClient) async throws -> Void) async throws {
        bootstrapLogging()
        let client: HTTPFalconClient
        do {
            client = try HTTPFalconClient(configuration: try clientConfiguration(), logger: Logger(label: "quickscan"))
        } catch {
            throw CommandFailure.from(error)
        }
        do {
            try await body(client)
            await client.shutdown()
        } catch {
            await client.shutdown()
            throw CommandFailure.from(error)
        }
    }

    func bootstrapLogging() {
        LogSetup.bootstrap(level: Logger.Level(rawValue: logLevel) ?? .warning, format: logFormat)
    }
}

/// A failure already reported on stderr, carrying the exit code.
struct CommandFailure: Error {
    let code: Int32

    /// Prints one clear line for `error` and picks the exit code (3: configuration or credentials).
    static func from(_ error: any Error) -> any Error {
        if error is CommandFailure || error is ExitCode { return error }
        guard let falcon = error as? FalconError else {
            printError("\(error)")
            return ExitCode(1)
        }
        printError(falcon.description)
        switch falcon.kind {
        case .configuration, .authentication:
            return ExitCode(3)
        case .transport where falcon.operation == "oauth2AccessToken":
            return ExitCode(3)
        default:
            return ExitCode(1)
        }
    }
}

/// Writes `quickscan: error: …` to stderr.
func printError(_ message: String) {
    FileHandle.standardError.write(Data("quickscan: error: \(message)\n".utf8))
}

/// Writes the API's reply body as it came, one document per line.
func printRawJSON(_ body: [UInt8]) {
    var text = String(decoding: body, as: UTF8.self)
    while text.hasSuffix("\n") { text.removeLast() }
    print(text)
}
