/// What the emulator's pretend scanner makes of a sample, decided from its first 4 KiB.
///
/// Deterministic verdicts, so tests and demos can choose the outcome by content:
/// - the EICAR test string (`X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)
///   anywhere in the first 4 KiB: ``EmulatorConfiguration/malwareVerdict``;
/// - PNG or JPEG magic bytes at the start: `unknown` with error `unsupported file type: image`
///   (the fact sheet's unscannable `.png`/`.jpg` demo files);
/// - the marker `QUICKSCAN-EMULATOR-SUSPICIOUS` in the first 4 KiB: ``EmulatorConfiguration/suspiciousVerdict``;
/// - the marker `QUICKSCAN-EMULATOR-UNKNOWN` in the first 4 KiB: `unknown` without an error;
/// - the marker `QUICKSCAN-EMULATOR-LIKELY-BENIGN`: QuickScan Pro's `likely_benign` (legacy:
///   the clean verdict);
/// - anything else: ``EmulatorConfiguration/cleanVerdict`` when the type is on the accepted
///   list (§4.1), else per ``EmulatorConfiguration/unacceptedTypeBehaviour``. QuickScan Pro has
///   no type list: everything else is `clean` there.
enum SampleKind: Sendable, Equatable {
    case eicar
    case image
    case suspiciousMarker
    case unknownMarker
    case likelyBenignMarker
    case clean

    /// How many leading bytes are inspected.
    static let inspectedBytes = 4096

    static let eicarBytes = Array(#"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"#.utf8)
    static let suspiciousMarkerBytes = Array("QUICKSCAN-EMULATOR-SUSPICIOUS".utf8)
    static let unknownMarkerBytes = Array("QUICKSCAN-EMULATOR-UNKNOWN".utf8)
    static let likelyBenignMarkerBytes = Array("QUICKSCAN-EMULATOR-LIKELY-BENIGN".utf8)
    static let pngMagic: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    static let jpegMagic: [UInt8] = [0xFF, 0xD8, 0xFF]

    /// Classifies a sample from its leading bytes (at most ``inspectedBytes`` are looked at).
    static func classify(head: [UInt8]) -> SampleKind {
        let head = Array(head.prefix(inspectedBytes))
        if contains(head, eicarBytes) { return .eicar }
        if head.starts(with: pngMagic) || head.starts(with: jpegMagic) { return .image }
        if contains(head, suspiciousMarkerBytes) { return .suspiciousMarker }
        if contains(head, unknownMarkerBytes) { return .unknownMarker }
        if contains(head, likelyBenignMarkerBytes) { return .likelyBenignMarker }
        return .clean
    }

    /// The verdict and error GetScans reports for this kind under `configuration`;
    /// `acceptedType` tells whether the sample's type is on the accepted list.
    func outcome(_ configuration: EmulatorConfiguration, acceptedType: Bool = true) -> (verdict: String, error: String?) {
        switch self {
        case .eicar: return (configuration.malwareVerdict, nil)
        case .image: return ("unknown", "unsupported file type: image")
        case .suspiciousMarker: return (configuration.suspiciousVerdict, nil)
        case .unknownMarker: return ("unknown", nil)
        case .likelyBenignMarker, .clean:
            if !acceptedType, configuration.unacceptedTypeBehaviour == .unknownVerdict {
                return ("unknown", "unsupported file type")
            }
            return (configuration.cleanVerdict, nil)
        }
    }

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count, let first = needle.first else { return false }
        var index = 0
        let last = haystack.count - needle.count
        while index <= last {
            if haystack[index] == first, haystack[index..<index + needle.count].elementsEqual(needle) { return true }
            index += 1
        }
        return false
    }
}
