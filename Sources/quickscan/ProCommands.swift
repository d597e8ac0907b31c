import ArgumentParser
import FalconAPI
import Foundation

/// `quickscan pro …`: the six QuickScan Pro operations (`/quickscanpro/*`).
struct ProCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pro",
        abstract: "QuickScan Pro operations: upload, launch, results, query, delete-file, delete-scan.",
        discussion: "QuickScan Pro scans one file per scan (scan ids are 32 hex digits) and needs the \"QuickScan Pro\" API scope.\n\n" + apiExitCodes,
        subcommands: [
            ProUploadCommand.self, ProLaunchCommand.self, ProResultsCommand.self, ProQueryCommand.self,
            ProDeleteFileCommand.self, ProDeleteScanCommand.self,
        ])
}

/// `quickscan pro upload FILE... [--scan]`: UploadFileQuickScanPro.
struct ProUploadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload", abstract: "Upload files to QuickScan Pro (UploadFileQuickScanPro); prints the sha256 (and scan id with --scan).",
        discussion: "Files are streamed from disk; a file over 256 MiB is refused before anything is sent; the other files are still uploaded. With --scan each upload starts a scan and spends quota, and is not repeated automatically when its answer is lost.\n\n" + apiExitCodes)

    @Argument(help: "Files to upload.")
    var files: [String]

    @Flag(help: "Start a scan of each file as it is uploaded (scan=true).")
    var scan = false

    @Option(help: "Password of an encrypted archive (sent as the multipart field password).")
    var password: String?

    @OptionGroup var falcon: FalconOptions

    func run() async throws {
        try await falcon.withClient { client in
            var failed = 0
            var table = TextTable("SHA256", "SCAN_ID", "FILE")
            for file in files {
                do {
                    let result = try await client.uploadQuickScanProFile(path: file, scan: scan, password: password)
                    if falcon.json { printRawJSON(result.response.rawBody) } else { table.add(result.sha256, result.scanID ?? "", file) }
                } catch let error as FalconError where error.kind == .localFile || error.kind == .http {
                    failed += 1
                    printError("\(file): \(error)")
                }
            }
            if !falcon.json, !table.rows.isEmpty { print(table.render()) }
            if failed > 0 { throw ExitCode(1) }
        }
    }
}

/// `quickscan pro launch SHA256...`: LaunchScan, one scan per file.
struct ProLaunchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch", abstract: "Start QuickScan Pro scans of uploaded files (LaunchScan); prints a scan id per sha256.",
        discussion: "Spends quota and is not repeated automatically when the answer is lost: check `quickscan pro query --sha256 H` before retrying.\n\n" + apiExitCodes)

    @Argument(help: "SHA-256 digests of uploaded files (64 hex characters).")
    var sha256s: [String]

    @Option(help: "Password of an encrypted archive.")
    var password: String?

    @OptionGroup var falcon: FalconOptions

    func validate() throws {
        for s in sha256s where !isSHA256(s) {
            throw ValidationError("\(s) is not a SHA-256 (64 hex characters)")
        }
    }

    func run() async throws {
        try await falcon.withClient { client in
            let response = try await client.launchQuickScanProScans(sha256s, password: password)
            if falcon.json { return printRawJSON(response.rawBody) }
            var table = TextTable("SCAN_ID", "SHA256", "CREATED")
            for launch in response.resources { table.add(launch.id, launch.sha256, launch.createdTimestamp ?? "") }
            print(table.render())
        }
    }
}

/// `quickscan pro results ID...`: GetScanResult.
struct ProResultsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "results", abstract: "Show QuickScan Pro scans (GetScanResult): status, verdict, confidence, file type and errors.",
        discussion: "Up to 100 ids go in one request. A scan the API does not return is shown as not found.\n\n" + apiExitCodes)

    @Argument(help: "Scan ids (32 hex characters).")
    var ids: [String]

    @OptionGroup var falcon: FalconOptions

    func run() async throws {
        try await falcon.withClient { client in
            let response = try await client.getQuickScanProResults(ids: ids)
            if falcon.json { return printRawJSON(response.rawBody) }
            var table = TextTable("SCAN_ID", "STATUS", "SHA256", "VERDICT", "CONFIDENCE", "FILE_TYPE", "REASON", "ERRORS")
            for id in ids {
                guard let scan = response.resources.first(where: { $0.id.lowercased() == id.lowercased() }) else {
                    table.add(id, "not found", "", "", "", "", "", "")
                    continue
                }
                let result = scan.isDone ? scan.result : nil
                table.add(
                    scan.id, scan.scan.status, scan.scan.sha256, result?.verdict?.rawValue ?? "-",
                    result?.maliciousConfidence.map(String.init) ?? "", result?.fileTypeShort ?? result?.fileType ?? "",
                    result?.verdictReason ?? "", scan.scan.errors.map { "\($0.code): \($0.message)" }.joined(separator: "; "))
            }
            print(table.render())
        }
    }
}

/// `quickscan pro query`: QueryScanResults.
struct ProQueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query", abstract: "List QuickScan Pro scan ids (QueryScanResults).",
        discussion: "Example: --filter \"verdict:'malicious'+created_timestamp:>'2026-11-01T00:00:00Z'\" (a + joins conditions; it is percent-encoded for you), or --sha256 H for the scans of one file.\n\n" + apiExitCodes)

    @Option(help: "FQL filter (empty: every scan).")
    var filter: String?

    @Option(help: "Only the scans of this file (adds sha256:'H' to the filter).")
    var sha256: String?

    @Option(help: "At most this many ids (1…5000; the API's default is 50).")
    var limit: Int?

    @Option(help: "Start at this offset.")
    var offset: Int?

    @Option(help: "Sort order: desc (newest first) or asc.")
    var sort: String?

    @OptionGroup var falcon: FalconOptions

    func validate() throws {
        if let limit, !(1...5000).contains(limit) { throw ValidationError("--limit must be within 1…5000") }
        if let offset, offset < 0 { throw ValidationError("--offset must not be negative") }
        if let sort, !["asc", "desc"].contains(sort) { throw ValidationError("--sort must be asc or desc") }
        if let sha256, !isSHA256(sha256) { throw ValidationError("--sha256 must be 64 hex characters") }
    }

    func run() async throws {
        var terms: [String] = []
        if let filter, !filter.isEmpty { terms.append(filter) }
        if let sha256 { terms.append("sha256:'\(sha256.lowercased())'") }
        let order: QuickScanProSort? = sort.map { $0 == "asc" ? .oldestFirst : .newestFirst }
        try await falcon.withClient { client in
            let response = try await client.queryQuickScanProResults(
                filter: terms.joined(separator: "+"), offset: offset, limit: limit, sort: order)
            if falcon.json { return printRawJSON(response.rawBody) }
            for id in response.resources { print(id) }
            if let page = response.meta.pagination {
                FileHandle.standardError.write(Data("\(response.resources.count) of \(page.total.map(String.init) ?? "?") scans (offset \(page.offset.map(String.init) ?? "0"))\n".utf8))
            }
        }
    }
}

/// `quickscan pro delete-file SHA256...`: DeleteFile.
struct ProDeleteFileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete-file", abstract: "Delete uploaded files from QuickScan Pro (DeleteFile); prints each sha256 deleted.",
        discussion: "Up to 100 sha256s go in one request. A file already gone is reported on stderr, not as a failure.\n\n" + apiExitCodes)

    @Argument(help: "SHA-256 digests of uploaded files.")
    var sha256s: [String]

    @OptionGroup var falcon: FalconOptions

    func validate() throws {
        for s in sha256s where !isSHA256(s) {
            throw ValidationError("\(s) is not a SHA-256 (64 hex characters)")
        }
    }

    func run() async throws {
        try await falcon.withClient { client in
            let response = try await client.deleteQuickScanProFiles(sha256s: sha256s)
            if falcon.json { return printRawJSON(response.rawBody) }
            printDeletion(response)
        }
    }
}

/// `quickscan pro delete-scan ID...`: DeleteScanResult.
struct ProDeleteScanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete-scan", abstract: "Delete stored QuickScan Pro scan results (DeleteScanResult); prints each id deleted.",
        discussion: "Up to 100 ids go in one request.\n\n" + apiExitCodes)

    @Argument(help: "Scan ids (32 hex characters).")
    var ids: [String]

    @OptionGroup var falcon: FalconOptions

    func run() async throws {
        try await falcon.withClient { client in
            let response = try await client.deleteQuickScanProResults(ids: ids)
            if falcon.json { return printRawJSON(response.rawBody) }
            printDeletion(response)
        }
    }
}

/// Prints what was deleted on stdout and what the API could not find on stderr.
private func printDeletion(_ response: FalconResponse<String>) {
    for id in response.resources { print(id) }
    for error in response.errors {
        FileHandle.standardError.write(Data("quickscan: \(error.message) (code \(error.code))\n".utf8))
    }
}
