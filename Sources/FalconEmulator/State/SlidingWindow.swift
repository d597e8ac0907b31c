/// Request times over the last minute, for `X-Ratelimit-Remaining` (§3.1: sliding window).
struct SlidingWindow: Sendable {
    private var times: [Double] = []
    /// Seconds a request counts (60; tests shorten it to exercise a full window quickly).
    var length: Double

    init(length: Double = 60) {
        self.length = length
    }

    /// Drops entries older than a minute and returns how many remain.
    mutating func count(now: Double) -> Int {
        let cutoff = now - length
        if let firstKept = times.firstIndex(where: { $0 > cutoff }) {
            if firstKept > 0 { times.removeFirst(firstKept) }
        } else {
            times.removeAll()
        }
        return times.count
    }

    mutating func add(_ now: Double) {
        times.append(now)
    }

    /// When the oldest entry leaves the window.
    var nextRelease: Double? {
        times.first.map { $0 + length }
    }
}
