import ArgumentParser

/// The `quickscan` command tree; wiring only, the work lives in the libraries.
@main
struct QuickScanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quickscan",
        abstract: "Scan files with CrowdStrike Falcon Quick Scan.",
        discussion: """
            API commands read credentials from FALCON_CLIENT_ID and FALCON_CLIENT_SECRET (optional \
            FALCON_MEMBER_CID), the cloud from --cloud or FALCON_CLOUD and a host override from \
            --base-url or FALCON_BASE_URL. `quickscan emulator` runs a local Falcon API to try \
            everything without credentials.

            Exit codes of the API commands: 0 success, 1 failure, 3 configuration or credential \
            error (missing credential, refused credentials, unreachable host).
            """,
        subcommands: [
            QuotaCommand.self, UploadCommand.self, ScanSamplesCommand.self, ScansCommand.self,
            SubmissionsCommand.self, AggregatesCommand.self, ProCommand.self, HashCommand.self, RunCommand.self, StatusCommand.self, ResultsCommand.self, HistoryCommand.self, PruneCommand.self, ConfigCommand.self, EmulatorCommand.self,
        ]
    )

    /// Entry point. `quickscan hash` with many paths bypasses the argument parser, whose
    /// parsing time grows with the square of the argument count (20,000 paths: seconds).
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "hash", let fast = HashCommand.fastParse(Array(arguments.dropFirst())) {
            do {
                try HashCommand.hashAndPrint(paths: fast.paths, threads: fast.threads)
            } catch {
                HashCommand.exit(withError: error)
            }
            return
        }
        await main(nil)
    }
}
