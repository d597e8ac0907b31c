import Foundation
import SQLiteKit

/// Retention: removes what is old in short transactions, so a running watcher (which shares
/// the database, or this actor) never waits long for the write lock.
extension WorkerStore {
    /// Removes up to `limit` files finished (disposed or superseded) before `cutoff`, with
    /// their events and delivered notifications. A file with an undelivered notification stays.
    /// Their samples stay for `pruneSamples`. One transaction; returns what it removed.
    public func pruneFiles(before cutoff: Double, limit: Int) throws -> (files: Int, events: Int) {
        // Set-based, through a temporary list of the files: a few statements per chunk instead
        // of three per file.
        try db.execute("CREATE TEMP TABLE IF NOT EXISTS prune_files (id INTEGER PRIMARY KEY)")
        return try pruneTransaction {
            try db.run("DELETE FROM temp.prune_files")
            let files = try db.run("""
                INSERT INTO temp.prune_files (id)
                SELECT id FROM files INDEXED BY files_final_age
                WHERE state IN ('disposed','superseded') AND updated_at < ?
                  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.file_id = files.id AND o.delivered_at IS NULL)
                ORDER BY updated_at LIMIT ?
                """, [cutoff, limit])
            guard files > 0 else { return (0, 0) }
            let events = try db.run("DELETE FROM events WHERE entity = 'file' AND entity_id IN (SELECT CAST(id AS TEXT) FROM temp.prune_files)")
            try db.run("DELETE FROM outbox WHERE file_id IN (SELECT id FROM temp.prune_files)")
            try db.run("DELETE FROM files WHERE id IN (SELECT id FROM temp.prune_files)")
            try db.run("DELETE FROM temp.prune_files")
            return (files, events)
        }
    }

    /// The condition on a sample `s` that lets it go (one parameter: the cutoff): scanned (or
    /// never scanned) before the cutoff, in no volume in flight, not left in the cloud (those
    /// wait for `prune --cloud`), and no file or volume refers to it. Checked in the deleting
    /// transaction, so foreign key checks on the delete would only repeat it.
    static let prunableSample = """
        COALESCE(s.scanned_at, 0) < ? AND s.volume_id IS NULL AND s.delete_pending = 0
          AND NOT (s.uploaded_at IS NOT NULL AND s.deleted_at IS NULL)
          AND NOT EXISTS (SELECT 1 FROM files f WHERE f.sha256 = s.sha256)
          AND NOT EXISTS (SELECT 1 FROM volume_members m WHERE m.sha256 = s.sha256)
        """

    /// Deletes the samples listed in temp.prune_samples (checked by the caller, in this
    /// transaction) and their events; empties the list; returns how many.
    private func deleteListedSamples() throws -> Int {
        guard let n = try db.queryOne("SELECT COUNT(*) AS n FROM temp.prune_samples")?.int("n"), n > 0 else { return 0 }
        try db.run("""
            DELETE FROM events WHERE rowid IN (
                SELECT e.rowid FROM temp.prune_samples p CROSS JOIN events e ON e.entity = 'sample' AND e.entity_id = p.sha256)
            """)
        try db.run("DELETE FROM samples WHERE rowid IN (SELECT id FROM temp.prune_samples)")
        try db.run("DELETE FROM temp.prune_samples")
        return Int(n)
    }

    /// One prune transaction, with this connection's automatic checkpoint and foreign key
    /// enforcement off while it runs:
    /// - the caller checkpoints after it (`checkpoint()`), in the time it leaves other writers
    ///   anyway, instead of inside the commit's call;
    /// - the deletes check the references themselves (`prunableSample`), and SQLite would look
    ///   each one up a second time.
    /// Both are set back before it returns (a watcher shares this connection in watch mode).
    private func pruneTransaction<T>(_ body: () throws -> T) throws -> T {
        try db.execute("PRAGMA foreign_keys = OFF; PRAGMA wal_autocheckpoint = 0")
        let result: T
        do {
            result = try db.transaction(body)
        } catch {
            // The transaction's error is the one to report; setting the two back only sets
            // flags outside a transaction and cannot fail for another reason than that error.
            try? db.execute("PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = \(SQLiteConnection.autoCheckpointPages)")
            throw error
        }
        try db.execute("PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = \(SQLiteConnection.autoCheckpointPages)")
        return result
    }

    /// Removes up to `limit` volumes finished before `cutoff` that no sample points at and
    /// whose QuickScan Pro scan result is not waiting to be deleted (DeleteScanResult), with
    /// their members and events. Returns the volumes removed.
    public func pruneVolumes(before cutoff: Double, limit: Int) throws -> Int {
        try pruneTransaction {
            let ids = try db.query("""
                SELECT id FROM volumes INDEXED BY volumes_finished
                WHERE state IN ('done','failed') AND finished_at < ? AND result_delete_pending = 0
                  AND NOT EXISTS (SELECT 1 FROM samples s WHERE s.volume_id = volumes.id)
                ORDER BY finished_at LIMIT ?
                """, [cutoff, limit]).compactMap { $0.int("id") }
            for id in ids {
                try db.run("DELETE FROM volume_members WHERE volume_id = ?", [id])
                try db.run("DELETE FROM events WHERE entity = 'volume' AND entity_id = ?", [String(id)])
                try db.run("DELETE FROM volumes WHERE id = ?", [id])
            }
            return ids.count
        }
    }

    /// Removes the samples that may go (`prunableSample`: the verdict cache keeps every
    /// verdict younger than its TTL because the caller's cutoff is at most now − TTL) among
    /// the next `limit` samples after rowid `after`, in rowid order. Returns the samples
    /// removed and the last rowid looked at (nil: none left to look at).
    public func pruneSamples(before cutoff: Double, limit: Int, after: Int64 = 0) throws -> (removed: Int, last: Int64?) {
        try db.execute("CREATE TEMP TABLE IF NOT EXISTS prune_samples (id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL)")
        return try pruneTransaction {
            try db.run("DELETE FROM temp.prune_samples")
            guard let last = try db.queryOne("SELECT MAX(rowid) AS last FROM (SELECT rowid FROM samples WHERE rowid > ? ORDER BY rowid LIMIT ?)",
                                             [after, limit])?.int("last") else { return (0, nil) }
            try db.run("""
                INSERT INTO temp.prune_samples (id, sha256)
                SELECT s.rowid, s.sha256 FROM samples s WHERE s.rowid > ? AND s.rowid <= ? AND \(Self.prunableSample)
                """, [after, last, cutoff])
            return (try deleteListedSamples(), last)
        }
    }

    /// Reclaims up to `pages` free pages (only on a database in incremental auto-vacuum mode);
    /// returns the free pages left.
    public func reclaimSpace(pages: Int) throws -> Int {
        guard try db.queryOne("PRAGMA auto_vacuum")?.int("auto_vacuum") == 2 else { return 0 }
        try pruneTransaction { try db.execute("PRAGMA incremental_vacuum(\(pages))") }
        return Int(try db.queryOne("PRAGMA freelist_count")?.int("freelist_count") ?? 0)
    }

    /// Free pages, all pages, and the auto-vacuum mode (0 none, 1 full, 2 incremental).
    public func spaceInfo() throws -> (freePages: Int, pageCount: Int, pageSize: Int, autoVacuum: Int) {
        (Int(try db.queryOne("PRAGMA freelist_count")?.int("freelist_count") ?? 0),
         Int(try db.queryOne("PRAGMA page_count")?.int("page_count") ?? 0),
         Int(try db.queryOne("PRAGMA page_size")?.int("page_size") ?? 4096),
         Int(try db.queryOne("PRAGMA auto_vacuum")?.int("auto_vacuum") ?? 0))
    }

    /// Rewrites the database (VACUUM: one transaction, as long as the pages in use take to
    /// copy; the auto-vacuum mode stays); returns its pages after.
    public func vacuum() throws -> Int {
        try db.execute("VACUUM")
        return Int(try db.queryOne("PRAGMA page_count")?.int("page_count") ?? 0)
    }

    /// Rewrites the whole database in incremental auto-vacuum mode (VACUUM holds the write lock
    /// for as long as it takes: `prune --vacuum`, once, with the watcher stopped).
    public func vacuumIntoIncrementalMode() throws {
        // The mode cannot change while in WAL: out of WAL for the rewrite, then back.
        try db.execute("PRAGMA journal_mode = DELETE")
        // After VACUUM; if it fails the database stays in rollback-journal mode: correct, slower,
        // and the next open sets WAL again.
        defer { try? db.execute("PRAGMA journal_mode = WAL") }
        try db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        try db.execute("VACUUM")
    }

    /// Moves the WAL's pages into the database without waiting for anyone (PASSIVE).
    public func checkpoint() throws {
        try db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    }

    /// Threat files filed under `folder` before `cutoff` (quarantine retention).
    public func quarantined(under folder: String, before cutoff: Double, limit: Int) throws -> [(id: Int64, path: String, disposedTo: String)] {
        try db.query("""
            SELECT id, path, disposed_to FROM files INDEXED BY files_final_age
            WHERE state IN ('disposed','superseded') AND state = 'disposed' AND outcome = 'threat' AND updated_at < ?
              AND substr(disposed_to, 1, ?) = ?
            ORDER BY updated_at LIMIT ?
            """, [cutoff, folder.utf8.count + 1, folder + "/", limit]).compactMap { row in
            guard let id = row.int("id"), let path = row.string("path"), let to = row.string("disposed_to") else { return nil }
            return (id, path, to)
        }
    }

    /// Records that the quarantined copy of a file was deleted by retention.
    public func noteQuarantineDeleted(_ id: Int64, path: String, days: Double) throws {
        try db.transaction {
            try event("file", String(id), from: FileState.disposed.rawValue, to: FileState.disposed.rawValue,
                      detail: "quarantined copy \(path) deleted by retention after \(days.clean) days")
        }
    }

    /// Samples uploaded by earlier runs and never deleted from the cloud, that no file still
    /// waits on (`prune --cloud`).
    public func samplesLeftInCloud(limit: Int) throws -> [String] {
        try db.query("""
            SELECT sha256 FROM samples s
            WHERE s.uploaded_at IS NOT NULL AND s.deleted_at IS NULL AND s.volume_id IS NULL
              AND NOT EXISTS (SELECT 1 FROM files f WHERE f.sha256 = s.sha256 AND f.state IN ('discovered','hashed','uploaded'))
            ORDER BY s.uploaded_at LIMIT ?
            """, [limit]).compactMap { $0.string("sha256") }
    }
}
