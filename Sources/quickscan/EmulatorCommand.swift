import ArgumentParser
import FalconEmulator
import Foundation
import Logging
import ServiceLifecycle

/// `quickscan emulator`: a local Falcon API (OAuth2, Sample Uploads v3, Quick Scan, QuickScan Pro) for trying
/// the client and the worker without credentials, with scripted faults.
struct EmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emulator",
        abstract: "Run a local Falcon API emulator (OAuth2, Sample Uploads v3, Quick Scan, QuickScan Pro).",
        discussion: """
            Prints `listening on http://HOST:PORT` as its first line on stdout, then serves until \
            SIGINT or SIGTERM. Any non-empty client id and secret are accepted unless --credential \
            is given. Exit codes: 0 stopped by a signal, 1 could not listen, 64 invalid flag.

            Verdicts come from the first 4 KiB of each sample: the EICAR test string gives the \
            malware verdict; PNG or JPEG magic bytes give "unknown" with the error "unsupported \
            file type: image"; the marker QUICKSCAN-EMULATOR-SUSPICIOUS gives the suspicious \
            verdict; the marker QUICKSCAN-EMULATOR-UNKNOWN gives "unknown" without an error; \
            anything else gives the clean verdict ("no specific threat") when its type is on \
            Sample Uploads' accepted list (by file name or leading bytes: PE, Office, PDF, ELF, \
            scripts such as .js .ps1 .py, ...), and otherwise "unknown" with the error \
            "unsupported file type" (--unaccepted-types scan: the clean verdict). Plain text is \
            not on the list.

            QuickScan Pro (/quickscanpro/*) verdicts: EICAR malicious, the suspicious marker \
            suspicious, QUICKSCAN-EMULATOR-LIKELY-BENIGN likely_benign, PNG/JPEG unknown with an \
            entry in scan.errors, the unknown marker unknown, anything else clean. Scans finish \
            like Quick Scan volumes (--scan-polls-until-done, --scan-duration).

            Fault specs (--fault, repeatable, checked in order): KIND[:KEY=VALUE,...]
              429            429 with X-Ratelimit-Retryafter; retry-after=SECONDS (1)
              5xx            JSON server error; status=CODE (503); also 500, 502, 503
              html502        502 with a text/html nginx page
              drop           close the connection: no response, no effect
              lost-response  do the operation, then close without a response
              latency        delay the response; ms=MILLISECONDS (required)
              expire-tokens  invalidate every token issued so far
              malformed      a 200 with a broken body, operation not performed;
                             shape=html|truncated|wrong-shape|no-resources (html)
              refuse-sample  ScanSamples refuses a volume holding sha256=HEX (required)
                             with a 400 naming it; op=LaunchScan for QuickScan Pro
            Keys for every kind:
              op=OPERATION   oauth2AccessToken, oauth2RevokeToken, UploadSampleV3,
                             GetSampleV3, DeleteSampleV3, ScanSamples, GetScans,
                             QuerySubmissionsMixin0, GetScansAggregates,
                             UploadFileQuickScanPro, LaunchScan, GetScanResult,
                             QueryScanResults, DeleteFile, DeleteScanResult
              path=PREFIX    request path prefix, e.g. /scanner/
              method=METHOD  GET, POST, DELETE
              skip=N         let the first N matching requests through
              count=N        fire at most N times
              every=N        fire on every N-th matching request
              probability=P  chance per request (0...1), with seed=S to repeat
            Without op= or a /oauth2 path a rule never fires on the OAuth2 endpoints.
            Examples:
              --fault 429:retry-after=2,count=3,op=ScanSamples
              --fault 5xx:status=503,every=4
              --fault html502:count=2
              --fault drop:probability=0.1,seed=7
              --fault lost-response:op=ScanSamples,count=1
              --fault latency:ms=50
              --fault refuse-sample:sha256=<64 hex>,count=1
            """
    )

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to bind; 0 picks a free port (see the first stdout line).")
    var port = 0

    @Option(name: .customLong("credential"), help: ArgumentHelp(
        "Accepted API client as CLIENT_ID:CLIENT_SECRET (repeatable). Default: accept any.", valueName: "id:secret"))
    var credentials: [String] = []

    @Option(help: "X-Cs-Region on the token response. Default: none (a real region name sends FalconPy to the real cloud).")
    var region: String?

    @Option(help: "Token lifetime in seconds (expires_in).")
    var tokenLifetime = 1799

    @Option(help: "Customer id (32 hex digits): first half of scan ids.")
    var cid = EmulatorConfiguration().cid

    @Option(help: "GetScans (GetScanResult) calls per scan that still see it in progress.")
    var scanPollsUntilDone = EmulatorConfiguration().scanPollsUntilDone

    @Option(help: "Seconds a scan stays in progress (both this and --scan-polls-until-done must pass).")
    var scanDuration: Double = 0

    @Flag(help: "List in-progress scans with their status and no verdicts (the default; kept for old scripts).")
    var showInProgress = false

    @Flag(help: "Leave in-progress scans out of GetScans and GetScanResult resources instead of listing them.")
    var hideInProgress = false

    @Option(help: "Samples whose type is not on Sample Uploads' accepted list: unknown-verdict (\"unknown\" + error) or scan (clean verdict).")
    var unacceptedTypes = EmulatorConfiguration().unacceptedTypeBehaviour.rawValue

    @Option(help: "Where QuickScan Pro replies carry quota: meta, top-level or both.")
    var proQuota = EmulatorConfiguration().proQuotaPlacement.rawValue

    @Option(name: .customLong("response-header"), help: ArgumentHelp(
        "Header added to every response, e.g. X-Api-Deprecation:2027-01-01 (repeatable).", valueName: "name:value"))
    var responseHeaders: [String] = []

    @Option(help: "Status of a scan that is not done.")
    var inProgressStatus = "in_progress"

    @Option(help: "meta.quota.total.")
    var quotaTotal = 10_000

    @Option(help: "meta.quota.used at start (ScanSamples adds one per sample).")
    var quotaUsed = 0

    @Option(help: "Status of ScanSamples when the quota would be exceeded.")
    var quotaExhaustedStatus = 403

    @Option(help: "Largest accepted sample in bytes.")
    var maxUploadBytes = 256 * 1024 * 1024

    @Option(help: "Samples up to this size are kept for GetSampleV3.")
    var retainSampleBytes = 1024 * 1024

    @Option(help: "X-Ratelimit-Limit of authenticated calls per sliding minute (429 past it).")
    var rateLimit = 6000

    @Option(help: "Verdict for samples with the EICAR test string.")
    var malwareVerdict = "malware"

    @Option(help: "Verdict for samples with the marker QUICKSCAN-EMULATOR-SUSPICIOUS.")
    var suspiciousVerdict = "suspicious"

    @Option(help: "Verdict for everything else.")
    var cleanVerdict = "no specific threat"

    @Option(help: "ScanSamples with a sha256 never uploaded: reject (400) or unknown-verdict.")
    var unknownSample = "reject"

    @Option(help: "GetScans with an unknown scan id: not-found (404 when none was found), not-found-if-any (404 listing the found ones) or empty-ok (200).")
    var unknownScan = "not-found"

    @Option(name: .customLong("fault"), help: ArgumentHelp("Fault rule (repeatable); see the syntax above.", valueName: "spec"))
    var faults: [String] = []

    @Option(help: "Log level on stderr: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        _ = try makeConfiguration()
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level '\(logLevel)'") }
    }

    func makeConfiguration() throws -> EmulatorConfiguration {
        var configuration = EmulatorConfiguration()
        configuration.host = host
        configuration.port = port
        for credential in credentials {
            guard let colon = credential.firstIndex(of: ":"), colon != credential.startIndex,
                  credential.index(after: colon) != credential.endIndex else {
                throw ValidationError("--credential must be CLIENT_ID:CLIENT_SECRET, got '\(credential)'")
            }
            configuration.credentials[String(credential[..<colon])] = String(credential[credential.index(after: colon)...])
        }
        configuration.region = region
        configuration.tokenLifetimeSeconds = tokenLifetime
        configuration.cid = cid
        configuration.scanPollsUntilDone = scanPollsUntilDone
        configuration.scanDurationSeconds = scanDuration
        if showInProgress, hideInProgress { throw ValidationError("--show-in-progress and --hide-in-progress exclude each other") }
        configuration.emptyResourcesWhileInProgress = hideInProgress
        guard let unaccepted = EmulatorConfiguration.UnacceptedTypeBehaviour(rawValue: unacceptedTypes) else {
            throw ValidationError("--unaccepted-types must be unknown-verdict or scan, got '\(unacceptedTypes)'")
        }
        configuration.unacceptedTypeBehaviour = unaccepted
        guard let placement = EmulatorConfiguration.QuotaPlacement(rawValue: proQuota) else {
            throw ValidationError("--pro-quota must be meta, top-level or both, got '\(proQuota)'")
        }
        configuration.proQuotaPlacement = placement
        for header in responseHeaders {
            guard let colon = header.firstIndex(of: ":"), colon != header.startIndex else {
                throw ValidationError("--response-header must be NAME:VALUE, got '\(header)'")
            }
            let name = String(header[..<colon]).trimmingCharacters(in: .whitespaces)
            let value = String(header[header.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            configuration.extraResponseHeaders.append((name, value))
        }
        configuration.inProgressStatus = inProgressStatus
        configuration.quotaTotal = quotaTotal
        configuration.quotaUsed = quotaUsed
        configuration.quotaExhaustedStatus = quotaExhaustedStatus
        configuration.maxUploadBytes = maxUploadBytes
        configuration.retainSampleBytes = retainSampleBytes
        configuration.rateLimitPerMinute = rateLimit
        configuration.malwareVerdict = malwareVerdict
        configuration.suspiciousVerdict = suspiciousVerdict
        configuration.cleanVerdict = cleanVerdict
        guard let sampleBehaviour = EmulatorConfiguration.UnknownSampleBehaviour(rawValue: unknownSample) else {
            throw ValidationError("--unknown-sample must be reject or unknown-verdict, got '\(unknownSample)'")
        }
        configuration.unknownSampleBehaviour = sampleBehaviour
        guard let scanBehaviour = EmulatorConfiguration.UnknownScanBehaviour(rawValue: unknownScan) else {
            throw ValidationError("--unknown-scan must be not-found, not-found-if-any or empty-ok, got '\(unknownScan)'")
        }
        configuration.unknownScanBehaviour = scanBehaviour
        guard cid.utf8.count == 32, cid.allSatisfy(\.isHexDigit) else {
            throw ValidationError("--cid must be 32 hex digits")
        }
        do {
            configuration.faults = try faults.map { try FaultRule.parse($0) }
        } catch {
            throw ValidationError("\(error)")
        }
        return configuration
    }

    func run() async throws {
        var logger = Logger(label: "quickscan.emulator") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let emulator = FalconEmulator(configuration: try makeConfiguration(), logger: logger)
        try await emulator.start()
        StandardOutput.writeLine("listening on \(emulator.baseURL)")
        let group = ServiceGroup(configuration: .init(
            services: [emulator], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        ))
        try await group.run()
        // One line of request counts on the way out (benchmarks count API calls per file).
        FileHandle.standardError.write(Data("emulator stats: \(emulator.stats.json)\n".utf8))
    }
}
