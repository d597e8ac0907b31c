import ArgumentParser
import FalconAPI
import Foundation

/// The exit codes of every API command, for their `--help`.
let apiExitCodes = "Exit codes: 0 success, 1 failure (the API's message, HTTP status and trace id on stderr), 3 configuration or credential error (missing credential, refused credentials, unreachable host)."

/// `quickscan quota`: the Quick Scan quota from GetScans without ids.
struct QuotaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quota", abstract: "Show the Quick Scan quota (meta.quota: total, used, in_progress).",
        discussion: apiExitCodes)

    @OptionGroup var falcon: FalconOptions

    func run() async throws {
        try await falcon.withClient { client in
            let (quota, response) = try await client.quota()
            if falcon.json { return printRawJSON(response.rawBody) }
            guard let quota else {
                printError("the reply carries no meta.quota [trace id \(response.traceID ?? "-")]")
                throw ExitCode(1)
            }
            var table = TextTable("TOTAL", "USED", "IN_PROGRESS", "REMAINING")
            table.add("\(quota.total)", "\(quota.used)", "\(quota.inProgress)", "\(quota.remaining)")
            print(table.render())
        }
    }
}

/// `quickscan upload FILE...`: UploadSampleV3, one sha256 per file.
struct UploadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload", abstract: "Upload files as samples (UploadSampleV3); prints the sha256 of each.",
        discussion: "Files are streamed from disk; a file over 256 MiB is refused before anything is sent; the other files are still uploaded.\n\n" + apiExitCodes)

    @Argument(help: "Files to upload.")
    var files: [String]

    @Option(help: "Comment stored with each sample.")
    var comment: String?

    @Flag(help: "Send is_confidential=false (visible beyond your CID in MalQuery). Default: confidential.")
    var notConfidential = false

    @OptionGroup var falcon: FalconOptions

    func run() async throws {
        try await falcon.withClient { client in
            var failed = 0
            var table = TextTable("SHA256", "FILE")
            for file in files {
                do {
                    let result = try await client.uploadSample(path: file, comment: comment, isConfidential: !notConfidential)
                    if falcon.json { printRawJSON(result.response.rawBody) } else { table.add(result.sha256, file) }
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

/// `quickscan scan-samples SHA256...`: ScanSamples, prints the scan (volume) id.
struct ScanSamplesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan-samples", abstract: "Start a Quick Scan volume over uploaded samples (ScanSamples); prints the scan id.",
        discussion: "Spends quota and is not repeated automatically when the answer is lost: check `quickscan submissions` before retrying.\n\n" + apiExitCodes)

    @Argument(help: "SHA-256 digests of uploaded samples (64 hex characters).")
    var sha256s: [String]

    @OptionGroup var falcon: FalconOptions

    func validate() throws {
        for s in sha256s where !isSHA256(s) {
            throw ValidationError("\(s) is not a SHA-256 (64 hex characters)")
        }
    }

    func run() async throws {
        try await falcon.withClient { client in
            let (id, response) = try await client.scanSamples(sha256s)
            if falcon.json { return printRawJSON(response.rawBody) }
            print(id)
        }
    }
}

func isSHA256(_ s: String) -> Bool {
    s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 70) || ($0 >= 97 && $0 <= 102) }
}

/// `quickscan scans ID...`: GetScans, status and per-sample verdicts.
struct ScansCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scans", abstract: "Show scans (GetScans): status and the verdict of each sample.",
        discussion: "All ids go in one request. A scan the API does not return yet is shown as not found (it may still be in progress).\n\n" + apiExitCodes)

    @Argument(help: "Scan (volume) ids.")
    var ids: [String]

    @OptionGroup var falcon: FalconOptions

    func run() async throws {
        try await falcon.withClient { client in
            let response = try await client.getScans(ids: ids)
            if falcon.json { return printRawJSON(response.rawBody) }
            var table = TextTable("SCAN_ID", "STATUS", "SHA256", "VERDICT", "ERROR")
            for id in ids {
                guard let scan = response.resources.first(where: { $0.id == id }) else {
                    table.add(id, "not found (in progress or unknown)", "", "", "")
                    continue
                }
                if scan.samples.isEmpty { table.add(scan.id, scan.status, "", "", "") }
                for sample in scan.samples {
                    table.add(scan.id, scan.status, sample.sha256, sample.verdict ?? "-", sample.error ?? "")
                }
            }
            print(table.render())
        }
    }
}

/// `quickscan submissions`: QuerySubmissionsMixin0.
struct SubmissionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submissions", abstract: "List scan ids (QuerySubmissionsMixin0).",
        discussion: "Example: --filter \"created_timestamp:>'2026-11-01T00:00:00Z'+status:'done'\" (a + joins conditions; it is percent-encoded for you).\n\n" + apiExitCodes)

    @Option(help: "FQL filter, e.g. created_timestamp:>'2026-11-01T00:00:00Z'.")
    var filter: String?

    @Option(help: "At most this many ids (1…5000).")
    var limit: Int?

    @Option(help: "Start at this offset (as returned by the API).")
    var offset: String?

    @Option(help: "Sort order: asc or desc.")
    var sort: String?

    @OptionGroup var falcon: FalconOptions

    func validate() throws {
        if let limit, !(1...5000).contains(limit) { throw ValidationError("--limit must be within 1…5000") }
        if let sort, SubmissionSort(rawValue: sort) == nil { throw ValidationError("--sort must be asc or desc") }
    }

    func run() async throws {
        try await falcon.withClient { client in
            let response = try await client.querySubmissions(filter: filter, offset: offset, limit: limit, sort: sort.flatMap(SubmissionSort.init))
            if falcon.json { return printRawJSON(response.rawBody) }
            for id in response.resources { print(id) }
            if let page = response.meta.pagination {
                FileHandle.standardError.write(Data("\(response.resources.count) of \(page.total.map(String.init) ?? "?") scans (offset \(page.offset.map(String.init) ?? "0"))\n".utf8))
            }
        }
    }
}
