/// The states of one file version, and the transitions the store allows (ARCHITECTURE.md).
///
/// `discovered → hashed → uploaded → decided → disposing → disposed`; from any state before
/// `decided` a file may be decided early (not scanned, or a cached verdict), and any state
/// before `disposed` may become `superseded` when the file changed under us (its new version
/// is a new row).
public enum FileState: String, Sendable, CaseIterable {
    case discovered, hashed, uploaded, decided, disposing, disposed, superseded

    /// True for states a file never leaves.
    public var isFinal: Bool { self == .disposed || self == .superseded }

    /// Whether the store may move a file from `self` to `next`.
    public func canTransition(to next: FileState) -> Bool {
        switch (self, next) {
        case (.discovered, .hashed), (.hashed, .uploaded), (.decided, .disposing), (.disposing, .disposed):
            return true
        case (.discovered, .decided), (.hashed, .decided), (.uploaded, .decided):
            return true
        case (.uploaded, .hashed):
            // The API refused to scan a sample it should hold: upload it again.
            return true
        case (.disposing, .decided):
            // A disposal whose destination could not be used is retried from decided.
            return true
        case (let from, .superseded):
            return !from.isFinal && from != .disposing
        default:
            return false
        }
    }
}

/// The states of a Quick Scan volume: the intent is recorded before ScanSamples, the scan id after.
public enum VolumeState: String, Sendable, CaseIterable {
    case submitting, submitted, done, failed

    public func canTransition(to next: VolumeState) -> Bool {
        switch (self, next) {
        case (.submitting, .submitted), (.submitting, .failed), (.submitted, .done), (.submitted, .failed):
            return true
        default:
            return false
        }
    }
}
