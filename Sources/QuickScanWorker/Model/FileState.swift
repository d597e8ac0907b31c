/// The states of one file version, and the transitions the store allows (docs/ARCHITECTURE.md).
///
/// `discovered → hashed → uploaded → decided → disposing → disposed`; from any state before
/// `decided` a file may be decided early (not scanned, or a cached verdict), and any state
/// before `disposed` may become `superseded` when the file changed under us (its new version
/// is a new row). Every change of `files.state` goes through `WorkerStore.moveFile`, which
/// checks this table.
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
            // A disposal that failed and was rolled back (nothing placed, source in place) is
            // retried from decided.
            return true
        case (let from, .superseded):
            // Includes disposing: the file changed between the recorded intent and the move
            // (or before an interrupted disposal was resumed); nothing was placed for it.
            return !from.isFinal
        default:
            return false
        }
    }
}
