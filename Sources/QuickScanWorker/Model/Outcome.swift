import Foundation

/// The final outcome of a file (PRODUCT.md): not scanned is never clean.
public enum Outcome: String, Sendable, CaseIterable, Hashable {
    case clean
    case threat
    case notScanned = "not_scanned"
}

/// Why a file ended not scanned.
public enum NotScannedReason: String, Sendable, CaseIterable {
    case tooLarge = "too_large"
    case unreadable
    case vanished
    case unscannable
    case scanFailed = "scan_failed"
}

/// How a verdict string maps to an outcome: fail closed (reference §5.2).
///
/// Quick Scan (legacy, free text): contains "no specific threat" → clean; "unknown" → not
/// scanned (unscannable, with the API's error text); anything else, including verdicts we have
/// never seen → threat.
///
/// QuickScan Pro (an enum, matched case-insensitively with spaces as underscores, as
/// CrowdStrike's own integrations do): `clean` → clean; `likely_benign` → `scan.likely_benign`
/// (clean by default); `suspicious`, `malicious` → threat; `unknown` → not scanned
/// (unscannable); any other value → threat.
public enum VerdictMapping {
    public static func outcome(verdict: String?, error: String?, api: ScanAPI = .quickscan,
                               likelyBenign: Outcome = .clean) -> (Outcome, NotScannedReason?) {
        guard let verdict, !verdict.trimmingCharacters(in: .whitespaces).isEmpty else {
            return (.notScanned, .scanFailed)
        }
        let v = verdict.lowercased()
        switch api {
        case .quickscan:
            if v.contains("no specific threat") { return (.clean, nil) }
            if v == "unknown" { return (.notScanned, .unscannable) }
            return (.threat, nil)
        case .quickscanpro:
            switch v.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: " ", with: "_") {
            case "clean": return (.clean, nil)
            case "likely_benign": return likelyBenign == .notScanned ? (.notScanned, .unscannable) : (likelyBenign, nil)
            case "unknown": return (.notScanned, .unscannable)
            default: return (.threat, nil)  // suspicious, malicious, and anything never seen
            }
        }
    }
}
