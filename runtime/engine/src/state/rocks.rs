//! The RocksDB store: one instance per task directory ([`RocksState`]), a column family per
//! store and one for its expiry index (see the module above for the encoding).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{DBWithThreadMode, IteratorMode, MultiThreaded, Options, PrefixRange, ReadOptions, WriteBatch};

use super::*;

fn index_key(expires_at_ms: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&sortable_time(expires_at_ms));
    out.extend_from_slice(key);
    out
}

type Db = DBWithThreadMode<MultiThreaded>;

/// The RocksDB instance of one task directory; hands out its stores.
#[derive(Clone)]
pub struct RocksState {
    db: Arc<Db>,
    path: PathBuf,
}

impl std::fmt::Debug for RocksState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksState")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RocksState {
    /// Opens (or creates) the instance at `path` with every column family it already has.
    pub fn open(path: impl AsRef<Path>) -> Result<RocksState, StateError> {
        let path = path.as_ref().to_path_buf();
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // A new directory has no column family list yet; "default" always exists.
        let existing = Db::list_cf(&opts, &path).unwrap_or_else(|_| vec!["default".to_string()]);
        let db = Db::open_cf(&opts, &path, existing)?;
        Ok(RocksState { db: Arc::new(db), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store `name`, created (with its expiry index) if missing.
    pub fn store(&self, name: &str) -> Result<RocksStore, StateError> {
        check_store_name(name)?;
        let index = format!("{name}{INDEX_SUFFIX}");
        for cf in [name, index.as_str()] {
            if self.db.cf_handle(cf).is_none() {
                self.db.create_cf(cf, &Options::default())?;
            }
        }
        Ok(RocksStore {
            db: Arc::clone(&self.db),
            name: name.to_string(),
            index,
        })
    }

    /// Names of the stores this instance holds.
    pub fn store_names(&self) -> Result<Vec<String>, StateError> {
        let mut names: Vec<String> = Db::list_cf(&Options::default(), &self.path)?
            .into_iter()
            .filter(|n| n != "default" && !n.ends_with(INDEX_SUFFIX))
            .collect();
        names.sort();
        Ok(names)
    }
}

/// A store backed by a column family of a [`RocksState`].
pub struct RocksStore {
    db: Arc<Db>,
    name: String,
    index: String,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RocksStore {
    fn cfs(&self) -> Result<(Arc<rocksdb::BoundColumnFamily<'_>>, Arc<rocksdb::BoundColumnFamily<'_>>), StateError> {
        let data = self
            .db
            .cf_handle(&self.name)
            .ok_or_else(|| StateError::MissingColumnFamily(self.name.clone()))?;
        let index = self
            .db
            .cf_handle(&self.index)
            .ok_or_else(|| StateError::MissingColumnFamily(self.index.clone()))?;
        Ok((data, index))
    }

    fn corrupt(&self, key: &[u8]) -> StateError {
        StateError::CorruptValue {
            store: self.name.clone(),
            key: key.to_vec(),
        }
    }

    fn entry(&self, key: &[u8], stored: &[u8]) -> Result<Entry, StateError> {
        let (value, expires_at_ms) = decode_value(stored).ok_or_else(|| self.corrupt(key))?;
        Ok(Entry {
            key: key.to_vec(),
            value: value.to_vec(),
            expires_at_ms,
        })
    }

    /// Writes the stored form of `key` (or deletes it) and keeps the expiry index in step, in
    /// one atomic batch.
    fn write(&self, key: &[u8], stored: Option<&[u8]>) -> Result<(), StateError> {
        let (data, index) = self.cfs()?;
        let mut batch = WriteBatch::default();
        if let Some(old) = self.db.get_pinned_cf(&data, key)? {
            if let (_, Some(t)) = decode_value(&old).ok_or_else(|| self.corrupt(key))? {
                batch.delete_cf(&index, index_key(t, key));
            }
        }
        match stored {
            Some(stored) => {
                let (_, expires_at_ms) = decode_value(stored).ok_or_else(|| self.corrupt(key))?;
                if let Some(t) = expires_at_ms {
                    batch.put_cf(&index, index_key(t, key), []);
                }
                batch.put_cf(&data, key, stored);
            }
            None => batch.delete_cf(&data, key),
        }
        self.db.write_opt(batch, &no_wal())?;
        Ok(())
    }

    fn changelog(&self, key: &[u8], value: Option<Vec<u8>>) -> ChangelogRecord {
        ChangelogRecord {
            store: self.name.clone(),
            key: key.to_vec(),
            value,
        }
    }

    /// Number of expiry index entries (tests check that the index empties with the store).
    #[cfg(test)]
    fn index_len(&self) -> usize {
        let (_, index) = self.cfs().unwrap();
        self.db.iterator_cf(&index, IteratorMode::Start).count()
    }
}

/// Writes skip RocksDB's write-ahead log: the changelog topic is the store's durable log and a
/// task's store is rebuilt from it whenever its partition comes (back) to a worker, so the WAL
/// would only be a second copy (Kafka Streams turns it off too). It was a tenth of a join
/// worker's CPU samples. Memtables still reach disk on close and when full.
fn no_wal() -> rocksdb::WriteOptions {
    let mut options = rocksdb::WriteOptions::default();
    options.disable_wal(true);
    options
}

impl StateStore for RocksStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StateError> {
        let (data, _) = self.cfs()?;
        match self.db.get_pinned_cf(&data, key)? {
            Some(stored) => Ok(Some(self.entry(key, &stored)?)),
            None => Ok(None),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8], expires_at_ms: Option<i64>) -> Result<ChangelogRecord, StateError> {
        let stored = encode_value(value, expires_at_ms);
        self.write(key, Some(&stored))?;
        Ok(self.changelog(key, Some(stored)))
    }

    fn delete(&mut self, key: &[u8]) -> Result<ChangelogRecord, StateError> {
        self.write(key, None)?;
        Ok(self.changelog(key, None))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StateError> {
        let (data, _) = self.cfs()?;
        let mut opts = ReadOptions::default();
        opts.set_iterate_range(PrefixRange(prefix));
        self.db
            .iterator_cf_opt(&data, opts, IteratorMode::Start)
            .map(|item| {
                let (key, stored) = item?;
                self.entry(&key, &stored)
            })
            .collect()
    }

    fn due(&self, until_ms: i64) -> Result<Vec<Entry>, StateError> {
        let (data, index) = self.cfs()?;
        let mut opts = ReadOptions::default();
        // Everything strictly below the next millisecond's first possible key.
        match until_ms.checked_add(1) {
            Some(next) => opts.set_iterate_range(..sortable_time(next).to_vec()),
            None => opts.set_iterate_range(..),
        }
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(&index, opts, IteratorMode::Start) {
            let (index_key, _) = item?;
            let key = index_key.get(8..).ok_or_else(|| self.corrupt(&index_key))?;
            let stored = self.db.get_pinned_cf(&data, key)?.ok_or_else(|| self.corrupt(key))?;
            out.push(self.entry(key, &stored)?);
        }
        Ok(out)
    }

    fn apply(&mut self, record: &ChangelogRecord) -> Result<(), StateError> {
        check_record_store(&self.name, record)?;
        self.write(&record.key, record.value.as_deref())
    }

    /// RocksDB's own estimate (`rocksdb.estimate-num-keys`: exact for keys written once, over
    /// by the keys overwritten or deleted since the last compaction), read in constant time.
    /// The metrics gauge asks every few seconds on the processing thread: counting the keys
    /// stalled every task of a runner, about 1.5 s for 40,000 entries in a debug build.
    fn entry_count(&self) -> Result<usize, StateError> {
        let (data, _) = self.cfs()?;
        Ok(self
            .db
            .property_int_value_cf(&data, "rocksdb.estimate-num-keys")?
            .unwrap_or(0) as usize)
    }

    fn flush(&self) -> Result<(), StateError> {
        let (data, index) = self.cfs()?;
        self.db.flush_cf(&data)?;
        self.db.flush_cf(&index)?;
        Ok(())
    }

    fn clear(&mut self) -> Result<(), StateError> {
        let (data, index) = self.cfs()?;
        let mut batch = WriteBatch::default();
        for cf in [&data, &index] {
            for item in self.db.iterator_cf(cf, IteratorMode::Start) {
                let (key, _) = item?;
                batch.delete_cf(cf, key);
            }
        }
        self.db.write_opt(batch, &no_wal())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::state::tests::*;

    #[test]
    fn rocks_changelog_restores_an_equal_store() {
        let dir = tempfile::tempdir().unwrap();
        let state = RocksState::open(dir.path()).unwrap();
        let mut store = state.store("join").unwrap();
        let log = write_sequence(&mut store);
        check_contents(&store);

        // Restore into a fresh instance in another directory, as a new worker would.
        let other = tempfile::tempdir().unwrap();
        let mut restored = RocksState::open(other.path()).unwrap().store("join").unwrap();
        assert_eq!(restored.restore(log.clone()).unwrap(), log.len());
        check_contents(&restored);
        assert_eq!(restored.index_len(), 3);

        // The RocksDB and in-memory stores log the same bytes for the same writes.
        let mut mem = MemStore::new("join").unwrap();
        assert_eq!(write_sequence(&mut mem), log);
    }

    #[test]
    fn rocks_prefix_scan_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let state = RocksState::open(dir.path()).unwrap();
        check_prefix_and_get(&mut state.store("scan").unwrap());
        let mut store = state.store("expiry").unwrap();
        check_expiry_empties_the_store(&mut store);
        assert_eq!(store.index_len(), 0);
    }

    #[test]
    fn rocks_stores_are_separate_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let state = RocksState::open(dir.path()).unwrap();
            let mut a = state.store("p.s1.join").unwrap();
            let mut b = state.store("p.s2.batch").unwrap();
            a.put(b"k", b"from a", Some(5)).unwrap();
            b.put(b"k", b"from b", None).unwrap();
            assert_eq!(a.get(b"k").unwrap().unwrap().value, b"from a");
            assert_eq!(b.get(b"k").unwrap().unwrap().value, b"from b");
            a.put(b"k2", b"also a", None).unwrap();
            assert_eq!((a.entry_count().unwrap(), b.entry_count().unwrap()), (2, 1));
        }
        let state = RocksState::open(dir.path()).unwrap();
        assert_eq!(state.store_names().unwrap(), ["p.s1.join", "p.s2.batch"]);
        let a = state.store("p.s1.join").unwrap();
        assert_eq!(
            a.get(b"k").unwrap(),
            Some(Entry {
                key: b"k".to_vec(),
                value: b"from a".to_vec(),
                expires_at_ms: Some(5)
            })
        );
        assert_eq!(a.due(5).unwrap().len(), 1);
    }

    #[test]
    fn clear_empties_data_and_index_without_logging() {
        let dir = tempfile::tempdir().unwrap();
        let state = RocksState::open(dir.path()).unwrap();
        let mut rocks = state.store("s").unwrap();
        let mut mem = MemStore::new("s").unwrap();
        for store in [&mut rocks as &mut dyn StateStore, &mut mem] {
            store.put(b"a", b"1", Some(1)).unwrap();
            store.put(b"b", b"2", None).unwrap();
            store.clear().unwrap();
            assert!(store.scan_prefix(b"").unwrap().is_empty());
            assert!(store.due(i64::MAX).unwrap().is_empty());
        }
        assert_eq!(rocks.index_len(), 0);
    }

    #[test]
    fn foreign_or_corrupt_changelog_records_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let state = RocksState::open(dir.path()).unwrap();
        let mut rocks = state.store("s").unwrap();
        let mut mem = MemStore::new("s").unwrap();
        for store in [&mut rocks as &mut dyn StateStore, &mut mem] {
            let foreign = ChangelogRecord {
                store: "t".into(),
                key: b"k".to_vec(),
                value: None,
            };
            assert!(matches!(store.apply(&foreign), Err(StateError::WrongStore { .. })));
            let corrupt = ChangelogRecord {
                store: "s".into(),
                key: b"k".to_vec(),
                value: Some(vec![9, 9]),
            };
            assert!(matches!(store.apply(&corrupt), Err(StateError::CorruptValue { .. })));
            assert_eq!(store.get(b"k").unwrap(), None);
        }
    }

    #[test]
    fn index_names_are_reserved() {
        assert!(matches!(
            MemStore::new("x#expiry"),
            Err(StateError::InvalidStoreName(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let state = RocksState::open(dir.path()).unwrap();
        assert!(matches!(state.store(""), Err(StateError::InvalidStoreName(_))));
    }
}
