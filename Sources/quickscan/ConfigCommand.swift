import ArgumentParser
import Foundation
import QuickScanWorker

/// `quickscan config`: configuration tools.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Configuration tools.", subcommands: [ConfigCheckCommand.self])
}

/// `quickscan config check`: validate a config file and print the effective configuration.
struct ConfigCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Validate a config file and print the effective configuration, secrets masked.",
        discussion: """
            Every key, with defaults filled in and relative paths resolved. Also reports whether \
            credentials come from the environment (FALCON_CLIENT_ID / FALCON_CLIENT_SECRET) or the file.
            Exit codes: 0 valid, 3 invalid (the message names the key).
            """)

    @Option(help: "Config file (default: ./quickscan.json).")
    var config: String = "quickscan.json"

    func run() throws {
        let settings: WorkerConfiguration
        do {
            settings = try WorkerConfiguration.load(path: config)
        } catch {
            printError("\(error)")
            throw ExitCode(3)
        }
        print(settings.effectiveJSON())
        let env = ProcessInfo.processInfo.environment
        let source: String
        if env["FALCON_CLIENT_ID"]?.isEmpty == false && env["FALCON_CLIENT_SECRET"]?.isEmpty == false {
            source = "credentials: environment (FALCON_CLIENT_ID, FALCON_CLIENT_SECRET ****)"
        } else if settings.clientID != nil {
            source = "credentials: config file (falcon.client_id, falcon.client_secret ****)"
        } else {
            source = "credentials: none (set FALCON_CLIENT_ID and FALCON_CLIENT_SECRET, or use run --emulator)"
        }
        FileHandle.standardError.write(Data("quickscan: \(config) is valid; \(source)\n".utf8))
        if settings.inboxes.isEmpty {
            FileHandle.standardError.write(Data("quickscan: warning: no inboxes configured (run needs --inbox)\n".utf8))
        }
    }
}
