import FalconAPI
import Foundation

/// The reconciler: a volume left `submitting` (ScanSamples maybe sent, its answer lost or
/// not recorded) adopts the scan the API created for exactly its sample set, or is
/// resubmitted when none exists; it waits while candidate scans cannot be read yet.
struct VolumeReconciler: Sendable {
    let context: StageContext

    /// Reconciliation pages: PSFalcon caps QuerySubmissionsMixin0 at 500 (reference §4).
    static let pageSize = 500

    func run() async throws {
        for volume in try await context.store.volumes(in: .submitting) {
            do {
                try await reconcile(volume)
                await context.policy.apiSucceeded()
            } catch let error as FalconError {
                try await context.policy.apiFailed(error, during: "reconcile volume \(volume.id)")
            }
        }
    }

    private func reconcile(_ volume: VolumeRecord) async throws {
        let (store, client, config, logger) = (context.store, context.client, context.config, context.logger)
        let members = Set(try await store.members(ofVolume: volume.id))
        let since = Date(timeIntervalSince1970: volume.intentAt - 300)
        let filter = "created_timestamp:>='\(ISO8601DateFormatter().string(from: since))'"
        let known = try await store.knownScanIDs()
        var candidates: [String] = []
        var offset: String?
        repeat {
            let page = try await client.querySubmissions(filter: filter, offset: offset, limit: Self.pageSize, sort: nil)
            candidates += page.resources.filter { !known.contains($0) }
            let total = page.meta.pagination?.total ?? 0
            let next = (Int(offset ?? "0") ?? 0) + page.resources.count
            offset = next < total && !page.resources.isEmpty ? String(next) : nil
        } while offset != nil
        var unreadable = false
        var adopted: String?
        for chunk in stride(from: 0, to: candidates.count, by: 100).map({ Array(candidates[$0..<min($0 + 100, candidates.count)]) }) {
            let scans = try await client.getScans(ids: chunk)
            for id in chunk {
                guard let scan = scans.resources.first(where: { $0.id == id }), !scan.samples.isEmpty else {
                    unreadable = true
                    continue
                }
                if Set(scan.samples.map(\.sha256)) == members { adopted = id }
            }
            if adopted != nil { break }
        }
        if let adopted {
            try await store.markVolumeSubmitted(volume.id, scanID: adopted, detail: "adopted \(adopted) after an interrupted submission")
            context.metrics.volumeAdopted()
            logger.info("volume adopted after interruption", metadata: ["volume.id": "\(volume.id)", "scan.id": "\(adopted)"])
        } else if unreadable && context.now() - volume.intentAt < config.scanTimeoutSeconds {
            logger.info("volume reconciliation waits for scans in progress", metadata: ["volume.id": "\(volume.id)"])
        } else {
            let answer: Result<String, FalconError>
            do {
                answer = .success(try await client.scanSamples(members.sorted()).scanID)
            } catch {
                answer = .failure(error)
            }
            switch answer {
            case .success(let scanID):
                try await store.markVolumeSubmitted(volume.id, scanID: scanID, detail: "resubmitted: no scan matched the recorded intent")
                context.metrics.volumeSubmitted()
            case .failure(let error) where error.mayHaveTakenEffect:
                logger.warning("resubmission answer lost; reconciling again", metadata: ["volume.id": "\(volume.id)"])
            case .failure(let error) where error.status == 400:
                // Refused (no scan created): as a refused volume of the submitter, its samples are
                // uploaded again, bounded by scan.max_attempts.
                try await store.failVolume(volume.id, from: .submitting, reason: "ScanSamples refused: \(error.message)", maxAttempts: config.scanMaxAttempts)
                try await store.forgetUploads(members.sorted())
            case .failure(let error):
                throw error
            }
        }
    }
}
