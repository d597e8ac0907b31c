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
/// Contains "no specific threat" → clean; "unknown" → not scanned (unscannable, with the API's
/// error text); anything else, including verdicts we have never seen → threat.
public enum VerdictMapping {
    public static func outcome(verdict: String?, error: String?) -> (Outcome, NotScannedReason?) {
        guard let verdict, !verdict.trimmingCharacters(in: .whitespaces).isEmpty else {
            return (.notScanned, .scanFailed)
        }
        let v = verdict.lowercased()
        if v.contains("no specific threat") { return (.clean, nil) }
        if v == "unknown" { return (.notScanned, .unscannable) }
        return (.threat, nil)
    }
}
