import Foundation
import QuickScanWorker
import Testing

@Suite struct StateMachineTests {
    @Test(arguments: [
        (FileState.discovered, FileState.hashed, true), (.hashed, .uploaded, true), (.uploaded, .decided, true),
        (.decided, .disposing, true), (.disposing, .disposed, true), (.discovered, .decided, true), (.hashed, .decided, true),
        (.discovered, .superseded, true), (.decided, .superseded, true),
        (.discovered, .uploaded, false), (.hashed, .disposed, false), (.disposed, .decided, false), (.disposed, .superseded, false),
        (.superseded, .discovered, false), (.decided, .hashed, false), (.uploaded, .hashed, true), (.disposing, .superseded, true),
        (.disposing, .decided, true), (.disposing, .hashed, false), (.superseded, .disposing, false),
    ])
    func fileTransitions(from: FileState, to: FileState, allowed: Bool) {
        #expect(from.canTransition(to: to) == allowed)
    }

    @Test func finalStatesHaveNoWayOut() {
        for from in FileState.allCases where from.isFinal {
            for to in FileState.allCases { #expect(!from.canTransition(to: to)) }
        }
    }

    @Test(arguments: [
        (VolumeState.submitting, VolumeState.submitted, true), (.submitted, .done, true), (.submitted, .failed, true),
        (.submitting, .failed, true), (.submitting, .done, false), (.done, .submitted, false), (.failed, .submitting, false),
    ])
    func volumeTransitions(from: VolumeState, to: VolumeState, allowed: Bool) {
        #expect(from.canTransition(to: to) == allowed)
    }

    @Test(arguments: [
        ("no specific threat", nil as String?, Outcome.clean, nil as NotScannedReason?),
        ("No Specific Threat", nil, .clean, nil),
        ("malware", nil, .threat, nil),
        ("suspicious", nil, .threat, nil),
        ("something new", nil, .threat, nil),
        ("unknown", "unsupported file type", .notScanned, .unscannable),
        ("unknown", nil, .notScanned, .unscannable),
        ("", nil, .notScanned, .scanFailed),
    ])
    func verdictsFailClosed(verdict: String, error: String?, outcome: Outcome, reason: NotScannedReason?) {
        let (o, r) = VerdictMapping.outcome(verdict: verdict, error: error)
        #expect(o == outcome)
        #expect(r == reason)
    }

    /// QuickScan Pro's enum, case-insensitive (spaces as underscores), failing closed; a legacy
    /// verdict string is never read with Pro's table or the other way round.
    @Test(arguments: [
        ("clean", Outcome.clean, nil as NotScannedReason?),
        ("CLEAN", .clean, nil),
        ("likely_benign", .clean, nil),
        ("Likely Benign", .clean, nil),
        ("suspicious", .threat, nil),
        ("malicious", .threat, nil),
        ("unknown", .notScanned, .unscannable),
        ("no specific threat", .threat, nil),  // not a Pro verdict: fail closed
        ("something new", .threat, nil),
        ("", .notScanned, .scanFailed),
    ])
    func proVerdictsFailClosed(verdict: String, outcome: Outcome, reason: NotScannedReason?) {
        let (o, r) = VerdictMapping.outcome(verdict: verdict, error: nil, api: .quickscanpro)
        #expect(o == outcome)
        #expect(r == reason)
    }

    @Test func likelyBenignFollowsTheSetting() {
        #expect(VerdictMapping.outcome(verdict: "likely_benign", error: nil, api: .quickscanpro, likelyBenign: .threat).0 == .threat)
        #expect(VerdictMapping.outcome(verdict: "clean", error: nil, api: .quickscan).0 == .threat, "a legacy verdict is free text")
    }
}
