//! State stores: join buffers, batch buffers and cycle counters (§5.3, §5.5, §5.6).
//!
//! A store is a sorted byte map behind the [`StateStore`] trait, with two implementations:
//! [`RocksStore`] (one RocksDB instance per task directory, [`RocksState`]; a store is a column
//! family named after the plan's store name) and [`MemStore`] (a `BTreeMap`, for unit tests and
//! the in-memory driver). As in Kafka Streams, the local store is a cache of its changelog topic:
//! every write returns the [`ChangelogRecord`] the caller must produce to that topic, and
//! [`StateStore::restore`] rebuilds a store from the topic when a partition moves to another
//! worker.
//!
//! Expiry. Every entry may carry an expiry time (ms since the epoch): the join window's end, a
//! batch's `windowMs` deadline. [`StateStore::due`] lists entries by expiry time and
//! [`StateStore::expire`] removes them, so a timer can close windows (**flowc**: outer joins and
//! partial batches flush on time, not only when a later record arrives). The expiry travels
//! inside the stored value, so the changelog needs no second topic:
//!
//! ```text
//! stored value = 0x00 payload                      no expiry
//!              | 0x01 expiry:8 payload             expiry = i64 big-endian, sign bit flipped
//! ```
//!
//! The same bytes are the value of the changelog record. RocksDB keeps a secondary index in the
//! column family `<store>#expiry`, keyed `expiry:8 ++ key` with empty values; with the flipped
//! sign bit, byte order is time order (negative times included), so "what is due by T" is one
//! range scan from the start. The index is derived data: it is written in the same atomic batch
//! as the entry and rebuilt from the values on restore, never logged.
//!
//! Scans return `Vec`s rather than iterators: the sets they return (one request's join parts, one
//! batch, what a timer tick expires) are small, and owned results keep RocksDB snapshots and
//! borrows out of operator code.

use std::collections::{BTreeMap, BTreeSet};

/// A write to a store, to be produced to the store's changelog topic: the record key is `key`,
/// the record value is `value` (the stored encoding, see the module docs) or a tombstone (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogRecord {
    /// The store's name (which changelog topic).
    pub store: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl ChangelogRecord {
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

/// One entry of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// When the entry is due, in ms since the epoch; `None`: never.
    pub expires_at_ms: Option<i64>,
}

/// An entry removed by [`StateStore::expire`], with the tombstone to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub entry: Entry,
    pub changelog: ChangelogRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[cfg(feature = "rocksdb")]
    #[error("state store I/O: {0}")]
    RocksDb(#[from] rocksdb::Error),
    #[error("changelog record of store '{found}' applied to store '{expected}'")]
    WrongStore { expected: String, found: String },
    #[error("store '{store}': value of key {key:?} is not a state store value (unknown tag or truncated)")]
    CorruptValue { store: String, key: Vec<u8> },
    #[error("store name '{0}' is not allowed (empty, or ends in '{INDEX_SUFFIX}', which marks expiry indexes)")]
    InvalidStoreName(String),
    #[error("store '{0}': column family is missing")]
    MissingColumnFamily(String),
}

/// A sorted byte map with expiry and a changelog.
pub trait StateStore: Send {
    /// The store's name, as in the plan.
    fn name(&self) -> &str;

    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StateError>;

    /// Inserts or replaces `key`; `expires_at_ms` replaces any earlier expiry.
    fn put(&mut self, key: &[u8], value: &[u8], expires_at_ms: Option<i64>) -> Result<ChangelogRecord, StateError>;

    /// Removes `key` (a tombstone is returned even if it was absent: logging it is harmless).
    fn delete(&mut self, key: &[u8]) -> Result<ChangelogRecord, StateError>;

    /// Entries whose key starts with `prefix`, in key order (`b""` lists the whole store).
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StateError>;

    /// Entries with `expires_at_ms <= until_ms`, in expiry order (then key order).
    fn due(&self, until_ms: i64) -> Result<Vec<Entry>, StateError>;

    /// Applies one changelog record without producing a new one (restoring).
    fn apply(&mut self, record: &ChangelogRecord) -> Result<(), StateError>;

    /// Removes everything without logging (before a full restore).
    fn clear(&mut self) -> Result<(), StateError>;

    /// How many entries the store holds (for the `flowc_store_entries` gauge; an estimate
    /// where counting would cost a scan).
    fn entry_count(&self) -> Result<usize, StateError> {
        Ok(self.scan_prefix(b"")?.len())
    }

    /// Removes the entries due by `now_ms` and returns them with their tombstones.
    fn expire(&mut self, now_ms: i64) -> Result<Vec<Expired>, StateError> {
        self.due(now_ms)?
            .into_iter()
            .map(|entry| {
                let changelog = self.delete(&entry.key)?;
                Ok(Expired { entry, changelog })
            })
            .collect()
    }

    /// Writes what the store holds in memory to disk (RocksDB's memtables: the stores write
    /// without a WAL, the changelog being the log), so a checkpoint taken after it holds
    /// through a crash. In-memory stores have nothing to flush.
    fn flush(&self) -> Result<(), StateError> {
        Ok(())
    }

    /// Applies a changelog in order (later records win; tombstones delete); returns how many
    /// records were applied. The store is not cleared first: replaying from an offset onto a
    /// store that was up to date at that offset is valid.
    fn restore<I>(&mut self, records: I) -> Result<usize, StateError>
    where
        Self: Sized,
        I: IntoIterator<Item = ChangelogRecord>,
    {
        let mut applied = 0;
        for record in records {
            self.apply(&record)?;
            applied += 1;
        }
        Ok(applied)
    }
}

const TAG_PLAIN: u8 = 0;
const TAG_EXPIRING: u8 = 1;
const INDEX_SUFFIX: &str = "#expiry";

/// i64 → 8 bytes whose byte order is numeric order.
fn sortable_time(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn time_from_sortable(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

/// The stored and logged form of a value (see the module docs).
fn encode_value(value: &[u8], expires_at_ms: Option<i64>) -> Vec<u8> {
    match expires_at_ms {
        None => {
            let mut out = Vec::with_capacity(1 + value.len());
            out.push(TAG_PLAIN);
            out.extend_from_slice(value);
            out
        }
        Some(t) => {
            let mut out = Vec::with_capacity(9 + value.len());
            out.push(TAG_EXPIRING);
            out.extend_from_slice(&sortable_time(t));
            out.extend_from_slice(value);
            out
        }
    }
}

/// The payload and expiry of a stored value; `None` if it is not one.
fn decode_value(stored: &[u8]) -> Option<(&[u8], Option<i64>)> {
    match stored.split_first()? {
        (&TAG_PLAIN, payload) => Some((payload, None)),
        (&TAG_EXPIRING, rest) if rest.len() >= 8 => {
            let (time, payload) = rest.split_at(8);
            let time = time_from_sortable(time.try_into().ok()?);
            Some((payload, Some(time)))
        }
        _ => None,
    }
}

fn check_store_name(name: &str) -> Result<(), StateError> {
    if name.is_empty() || name.ends_with(INDEX_SUFFIX) {
        return Err(StateError::InvalidStoreName(name.to_string()));
    }
    Ok(())
}

fn check_record_store(store: &str, record: &ChangelogRecord) -> Result<(), StateError> {
    if record.store != store {
        return Err(StateError::WrongStore {
            expected: store.to_string(),
            found: record.store.clone(),
        });
    }
    Ok(())
}

/// A store in memory: for unit tests and the in-memory driver.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemStore {
    name: String,
    entries: BTreeMap<Vec<u8>, (Vec<u8>, Option<i64>)>,
    index: BTreeSet<(i64, Vec<u8>)>,
}

impl MemStore {
    pub fn new(name: impl Into<String>) -> Result<MemStore, StateError> {
        let name = name.into();
        check_store_name(&name)?;
        Ok(MemStore {
            name,
            ..MemStore::default()
        })
    }

    fn changelog(&self, key: &[u8], value: Option<Vec<u8>>) -> ChangelogRecord {
        ChangelogRecord {
            store: self.name.clone(),
            key: key.to_vec(),
            value,
        }
    }

    fn insert(&mut self, key: &[u8], value: &[u8], expires_at_ms: Option<i64>) {
        self.remove(key);
        if let Some(t) = expires_at_ms {
            self.index.insert((t, key.to_vec()));
        }
        self.entries.insert(key.to_vec(), (value.to_vec(), expires_at_ms));
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some((_, Some(t))) = self.entries.remove(key) {
            self.index.remove(&(t, key.to_vec()));
        }
    }
}

impl StateStore for MemStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> Result<Option<Entry>, StateError> {
        Ok(self.entries.get(key).map(|(value, expires_at_ms)| Entry {
            key: key.to_vec(),
            value: value.clone(),
            expires_at_ms: *expires_at_ms,
        }))
    }

    fn put(&mut self, key: &[u8], value: &[u8], expires_at_ms: Option<i64>) -> Result<ChangelogRecord, StateError> {
        self.insert(key, value, expires_at_ms);
        Ok(self.changelog(key, Some(encode_value(value, expires_at_ms))))
    }

    fn delete(&mut self, key: &[u8]) -> Result<ChangelogRecord, StateError> {
        self.remove(key);
        Ok(self.changelog(key, None))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StateError> {
        Ok(self
            .entries
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (v, t))| Entry {
                key: k.clone(),
                value: v.clone(),
                expires_at_ms: *t,
            })
            .collect())
    }

    fn due(&self, until_ms: i64) -> Result<Vec<Entry>, StateError> {
        self.index
            .iter()
            .take_while(|(t, _)| *t <= until_ms)
            .map(|(_, key)| {
                self.get(key)?.ok_or_else(|| StateError::CorruptValue {
                    store: self.name.clone(),
                    key: key.clone(),
                })
            })
            .collect()
    }

    fn apply(&mut self, record: &ChangelogRecord) -> Result<(), StateError> {
        check_record_store(&self.name, record)?;
        match &record.value {
            None => self.remove(&record.key),
            Some(stored) => {
                let (value, expires_at_ms) = decode_value(stored).ok_or_else(|| StateError::CorruptValue {
                    store: self.name.clone(),
                    key: record.key.clone(),
                })?;
                self.insert(&record.key, value, expires_at_ms);
            }
        }
        Ok(())
    }

    fn clear(&mut self) -> Result<(), StateError> {
        self.entries.clear();
        self.index.clear();
        Ok(())
    }
}

#[cfg(feature = "rocksdb")]
mod rocks;
#[cfg(feature = "rocksdb")]
pub use rocks::{RocksState, RocksStore};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A sequence of writes that exercises overwrite, expiry change, expiry removal and delete.
    pub(super) fn write_sequence(store: &mut impl StateStore) -> Vec<ChangelogRecord> {
        vec![
            store.put(b"req-1/0", b"left", Some(1_000)).unwrap(),
            store.put(b"req-1/1", b"right", Some(1_000)).unwrap(),
            store.put(b"req-2/0", b"left", Some(2_000)).unwrap(),
            store.put(b"counter/req-9", b"1", None).unwrap(),
            // Overwrites: new value and expiry; new value, still none; expiry dropped.
            store.put(b"req-2/0", b"left2", Some(3_000)).unwrap(),
            store.put(b"counter/req-9", b"2", None).unwrap(),
            store.put(b"req-1/1", b"right2", None).unwrap(),
            store.delete(b"req-1/0").unwrap(),
            store.delete(b"absent").unwrap(),
            store.put(b"", b"empty key", Some(-5)).unwrap(),
            store.put(b"bin\xff\x00", b"", Some(i64::MIN)).unwrap(),
        ]
    }

    pub(super) fn expected_contents() -> Vec<Entry> {
        let e = |k: &[u8], v: &[u8], t: Option<i64>| Entry {
            key: k.to_vec(),
            value: v.to_vec(),
            expires_at_ms: t,
        };
        vec![
            e(b"", b"empty key", Some(-5)),
            e(b"bin\xff\x00", b"", Some(i64::MIN)),
            e(b"counter/req-9", b"2", None),
            e(b"req-1/1", b"right2", None),
            e(b"req-2/0", b"left2", Some(3_000)),
        ]
    }

    pub(super) fn check_contents(store: &impl StateStore) {
        assert_eq!(store.scan_prefix(b"").unwrap(), expected_contents());
        let due: Vec<_> = store.due(i64::MAX).unwrap();
        let due_keys: Vec<&[u8]> = due.iter().map(|e| e.key.as_slice()).collect();
        // Expiry order, negative times first.
        assert_eq!(due_keys, [&b"bin\xff\x00"[..], b"", b"req-2/0"]);
    }

    pub(super) fn check_prefix_and_get(store: &mut impl StateStore) {
        store.put(b"a", b"1", None).unwrap();
        store.put(b"a\x00x", b"2", None).unwrap();
        store.put(b"a\xff", b"3", None).unwrap();
        store.put(b"b", b"4", None).unwrap();
        store.put(b"\xff", b"5", None).unwrap();
        store.put(b"\xff\xff", b"6", None).unwrap();
        let keys =
            |prefix: &[u8]| -> Vec<Vec<u8>> { store.scan_prefix(prefix).unwrap().into_iter().map(|e| e.key).collect() };
        assert_eq!(keys(b"a"), vec![b"a".to_vec(), b"a\x00x".to_vec(), b"a\xff".to_vec()]);
        assert_eq!(keys(b"\xff"), vec![b"\xff".to_vec(), b"\xff\xff".to_vec()]);
        assert_eq!(keys(b"c"), Vec::<Vec<u8>>::new());
        assert_eq!(store.get(b"b").unwrap().unwrap().value, b"4");
        assert_eq!(store.get(b"c").unwrap(), None);
    }

    pub(super) fn check_expiry_empties_the_store(store: &mut impl StateStore) {
        store.put(b"k10", b"a", Some(10)).unwrap();
        store.put(b"k20", b"b", Some(20)).unwrap();
        store.put(b"k30", b"c", Some(30)).unwrap();
        store.put(b"k15", b"d", Some(15)).unwrap();
        store.put(b"forever", b"e", None).unwrap();
        // Moving an entry's expiry leaves no stale index entry behind.
        store.put(b"k30", b"c2", Some(12)).unwrap();

        assert!(store.expire(9).unwrap().is_empty());
        let expired = store.expire(15).unwrap();
        let keys: Vec<&[u8]> = expired.iter().map(|x| x.entry.key.as_slice()).collect();
        assert_eq!(keys, [&b"k10"[..], b"k30", b"k15"]);
        assert_eq!(expired[1].entry.value, b"c2");
        assert!(expired.iter().all(|x| x.changelog.is_tombstone()
            && x.changelog.key == x.entry.key
            && x.changelog.store == store.name()));

        let expired = store.expire(i64::MAX).unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].entry.key, b"k20");
        assert!(store.due(i64::MAX).unwrap().is_empty());

        store.delete(b"forever").unwrap();
        assert!(store.scan_prefix(b"").unwrap().is_empty());
    }

    #[test]
    fn value_encoding_round_trips_and_orders_time() {
        for t in [None, Some(0), Some(-1), Some(i64::MIN), Some(i64::MAX)] {
            let stored = encode_value(b"payload", t);
            assert_eq!(decode_value(&stored), Some((&b"payload"[..], t)));
        }
        assert!(sortable_time(-1) < sortable_time(0));
        assert!(sortable_time(i64::MIN) < sortable_time(-1));
        assert!(sortable_time(1) < sortable_time(256));
        assert_eq!(decode_value(&[]), None);
        assert_eq!(decode_value(&[1, 0, 0]), None);
        assert_eq!(decode_value(&[7, 1]), None);
    }

    #[test]
    fn mem_changelog_restores_an_equal_store() {
        let mut store = MemStore::new("join").unwrap();
        let log = write_sequence(&mut store);
        check_contents(&store);
        let mut restored = MemStore::new("join").unwrap();
        assert_eq!(restored.restore(log.clone()).unwrap(), log.len());
        check_contents(&restored);
        assert_eq!(restored, store);
    }

    #[test]
    fn mem_prefix_scan_and_expiry() {
        check_prefix_and_get(&mut MemStore::new("s").unwrap());
        let mut store = MemStore::new("s").unwrap();
        check_expiry_empties_the_store(&mut store);
        assert_eq!(store, MemStore::new("s").unwrap());
    }
}
