/// The states of a Quick Scan volume: the intent is recorded before ScanSamples, the scan id
/// after. Every change of `volumes.state` goes through `WorkerStore.moveVolume`, which checks
/// this table.
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
