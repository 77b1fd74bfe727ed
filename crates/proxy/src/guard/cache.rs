//! A bounded memo of detector scans, so that text a client sends again is scanned once.
//!
//! Chat clients resend the whole conversation with every turn: the system prompt and every
//! earlier message reach the gateway again and again, and scanning them is most of the
//! guard's cost on a long conversation. The detectors are deterministic functions of (text,
//! context), so a scan can be remembered and reused.
//!
//! - **Exact match.** The key is a hash of (partition, how the text is scanned — pipeline and
//!   context —, text), and a hit also compares all three, so a hash collision (found by chance
//!   or crafted) is a miss, never a wrong scan.
//! - **Per partition.** Entries are kept per partition (the caller's tenant; callers without
//!   one share the default partition), so that a hit — which answers measurably faster — cannot tell one
//!   tenant that another sent the same text.
//! - **Bounded.** Each shard holds two generations of at most `shard_bytes / 2` bytes each
//!   (text + findings + a fixed overhead per entry). When the current generation is full it
//!   becomes the previous one and the old previous one is dropped; a hit in the previous
//!   generation moves the entry forward. That approximates least-recently-used eviction
//!   with O(1) work per lookup and no per-entry bookkeeping.
//! - **Whole swaps.** The cache belongs to a snapshot's guard runtime, so a reload (new
//!   detectors, new model) starts with an empty one.
//!
//! Texts shorter than [`MIN_TEXT_BYTES`] are scanned directly: for them the lookup costs
//! about as much as the scan.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use portcullis_detect::Scan;

use super::Scanning;
pub(crate) use portcullis_telemetry::ScanCacheResult as Lookup;

/// Texts shorter than this are not remembered. Raising it saves memory and lookups for short
/// messages; lowering it below ~64 bytes costs more in hashing and locking than it saves.
pub(crate) const MIN_TEXT_BYTES: usize = 64;
/// Bookkeeping bytes charged per entry on top of its text and findings (map slot, `Arc`,
/// allocation headers), so that many small entries cannot exceed the budget.
const ENTRY_OVERHEAD_BYTES: usize = 128;
/// Shards: independent locks, so that concurrent exchanges rarely wait on each other.
const SHARDS: usize = 16;

struct Entry {
    partition: Box<str>,
    scanning: Scanning,
    text: Box<str>,
    scan: Scan,
}

impl Entry {
    fn cost(&self) -> usize {
        self.text.len()
            + self.partition.len()
            + self.scan.findings.len() * std::mem::size_of::<portcullis_detect::Finding>()
            + ENTRY_OVERHEAD_BYTES
    }

    fn matches(&self, partition: &str, scanning: Scanning, text: &str) -> bool {
        self.scanning == scanning && *self.partition == *partition && *self.text == *text
    }
}

#[derive(Default)]
struct Shard {
    current: HashMap<u64, Arc<Entry>>,
    previous: HashMap<u64, Arc<Entry>>,
    current_bytes: usize,
}

impl Shard {
    fn insert(&mut self, key: u64, entry: Arc<Entry>, generation_bytes: usize) {
        let cost = entry.cost();
        if cost > generation_bytes {
            return;
        }
        if self.current_bytes + cost > generation_bytes {
            self.previous = std::mem::take(&mut self.current);
            self.current_bytes = 0;
        }
        self.current_bytes += cost;
        if let Some(old) = self.current.insert(key, entry) {
            self.current_bytes = self.current_bytes.saturating_sub(old.cost());
        }
    }
}

/// See the module docs.
pub(crate) struct ScanCache {
    shards: Box<[Mutex<Shard>]>,
    /// Bytes one generation of one shard may hold.
    generation_bytes: usize,
    hasher: foldhash::quality::RandomState,
}

impl ScanCache {
    /// A cache holding at most about `budget_bytes`; `None` when the budget is 0 (off).
    pub(crate) fn new(budget_bytes: u64) -> Option<Self> {
        let budget = usize::try_from(budget_bytes).unwrap_or(usize::MAX);
        if budget == 0 {
            return None;
        }
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Some(Self {
            shards,
            generation_bytes: (budget / SHARDS / 2).max(1),
            hasher: foldhash::quality::RandomState::default(),
        })
    }

    fn key(&self, partition: &str, scanning: Scanning, text: &str) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        partition.hash(&mut hasher);
        scanning.hash(&mut hasher);
        text.hash(&mut hasher);
        hasher.finish()
    }

    /// The scan of `text` as `scanning` says, for `partition`: remembered, or computed by
    /// `scan` and remembered.
    pub(crate) fn scan(
        &self,
        partition: &str,
        scanning: Scanning,
        text: &str,
        scan: impl FnOnce() -> Scan,
    ) -> (Scan, Lookup) {
        let cost_floor = text.len() + partition.len() + ENTRY_OVERHEAD_BYTES;
        if text.len() < MIN_TEXT_BYTES || cost_floor > self.generation_bytes {
            return (scan(), Lookup::Bypass);
        }
        let key = self.key(partition, scanning, text);
        // Truncation is fine: the low bits of a 64-bit hash pick the shard.
        let shard = &self.shards[(key as usize) % SHARDS];
        if let Some(found) = self.find(shard, key, partition, scanning, text) {
            return (found.scan.clone(), Lookup::Hit);
        }
        let result = scan();
        let entry = Arc::new(Entry {
            partition: partition.into(),
            scanning,
            text: text.into(),
            scan: result.clone(),
        });
        if let Ok(mut shard) = shard.lock() {
            shard.insert(key, entry, self.generation_bytes);
        }
        (result, Lookup::Miss)
    }

    fn find(
        &self,
        shard: &Mutex<Shard>,
        key: u64,
        partition: &str,
        scanning: Scanning,
        text: &str,
    ) -> Option<Arc<Entry>> {
        // A poisoned lock only means another thread panicked mid-insert; scanning afresh is
        // always correct, so treat it as a miss.
        let mut shard = shard.lock().ok()?;
        if let Some(entry) = shard.current.get(&key) {
            return entry
                .matches(partition, scanning, text)
                .then(|| entry.clone());
        }
        let entry = shard.previous.remove(&key)?;
        if !entry.matches(partition, scanning, text) {
            return None;
        }
        // Move it forward so that it survives the next generation change.
        shard.insert(key, entry.clone(), self.generation_bytes);
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_detect::{Category, Context, Finding};

    fn scan_of(n: usize) -> Scan {
        Scan {
            findings: vec![Finding {
                category: Category::PromptInjection,
                detector: "injection",
                rule: "test",
                score: 0.5,
                start: 0,
                end: n,
            }],
            flagged: Vec::new(),
        }
    }

    fn text(seed: usize) -> String {
        format!(
            "{seed:08} {}",
            "the quick brown fox jumps over the lazy dog ".repeat(2)
        )
    }

    #[test]
    fn a_repeated_text_is_scanned_once_and_gives_the_same_scan() {
        let cache = ScanCache::new(1 << 20).unwrap();
        let t = text(1);
        let mut runs = 0;
        let (first, how) = cache.scan("", Scanning::Whole(Context::UserPrompt), &t, || {
            runs += 1;
            scan_of(3)
        });
        assert_eq!(how, Lookup::Miss);
        let (second, how) = cache.scan("", Scanning::Whole(Context::UserPrompt), &t, || {
            runs += 1;
            scan_of(99)
        });
        assert_eq!(how, Lookup::Hit);
        assert_eq!(runs, 1);
        assert_eq!(first, second);
        assert_eq!(second.findings[0].end, 3);
    }

    #[test]
    fn scanning_partition_and_text_each_separate_entries() {
        let cache = ScanCache::new(1 << 20).unwrap();
        let t = text(2);
        let _ = cache.scan("", Scanning::Whole(Context::UserPrompt), &t, || scan_of(1));
        let (_, how) = cache.scan("", Scanning::Whole(Context::ToolOutput), &t, || scan_of(2));
        assert_eq!(how, Lookup::Miss, "another context");
        let (_, how) = cache.scan("", Scanning::Definition, &t, || scan_of(6));
        assert_eq!(how, Lookup::Miss, "another pipeline");
        let (_, how) = cache.scan("tenant-b", Scanning::Whole(Context::UserPrompt), &t, || {
            scan_of(3)
        });
        assert_eq!(how, Lookup::Miss, "another partition");
        let other = format!("{t}.");
        let (_, how) = cache.scan("", Scanning::Whole(Context::UserPrompt), &other, || {
            scan_of(4)
        });
        assert_eq!(how, Lookup::Miss, "another text");
        let (again, how) = cache.scan("tenant-b", Scanning::Whole(Context::UserPrompt), &t, || {
            scan_of(5)
        });
        assert_eq!(how, Lookup::Hit);
        assert_eq!(again.findings[0].end, 3);
    }

    #[test]
    fn a_colliding_key_is_a_miss_not_a_wrong_answer() {
        let cache = ScanCache::new(1 << 20).unwrap();
        let (a, b) = (text(3), text(4));
        let key = cache.key("", Scanning::Whole(Context::UserPrompt), &a);
        // Plant `a`'s entry under the key `b` would have, as a collision would.
        let b_key = cache.key("", Scanning::Whole(Context::UserPrompt), &b);
        let entry = Arc::new(Entry {
            partition: "".into(),
            scanning: Scanning::Whole(Context::UserPrompt),
            text: a.clone().into(),
            scan: scan_of(7),
        });
        let shard = &cache.shards[(b_key as usize) % SHARDS];
        shard
            .lock()
            .unwrap()
            .insert(b_key, entry, cache.generation_bytes);
        let (got, how) = cache.scan("", Scanning::Whole(Context::UserPrompt), &b, || scan_of(8));
        assert_eq!(how, Lookup::Miss);
        assert_eq!(got.findings[0].end, 8);
        assert_ne!(key, b_key);
    }

    #[test]
    fn short_texts_and_a_zero_budget_bypass() {
        assert!(ScanCache::new(0).is_none());
        let cache = ScanCache::new(1 << 20).unwrap();
        let (_, how) = cache.scan("", Scanning::Whole(Context::UserPrompt), "hello", || {
            scan_of(1)
        });
        assert_eq!(how, Lookup::Bypass);
        let (_, how) = cache.scan("", Scanning::Whole(Context::UserPrompt), "hello", || {
            scan_of(1)
        });
        assert_eq!(how, Lookup::Bypass);
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let budget = 64 * 1024;
        let cache = ScanCache::new(budget).unwrap();
        for i in 0..10_000 {
            let _ = cache.scan("", Scanning::Whole(Context::UserPrompt), &text(i), || {
                scan_of(1)
            });
        }
        let held: usize = cache
            .shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap();
                s.current
                    .values()
                    .chain(s.previous.values())
                    .map(|e| e.cost())
                    .sum::<usize>()
            })
            .sum();
        assert!(held > 0);
        assert!(held <= budget as usize, "{held} > {budget}");
        // Recent entries survive; the oldest are gone.
        let (_, how) = cache.scan(
            "",
            Scanning::Whole(Context::UserPrompt),
            &text(9_999),
            || scan_of(1),
        );
        assert_eq!(how, Lookup::Hit);
        let (_, how) = cache.scan("", Scanning::Whole(Context::UserPrompt), &text(0), || {
            scan_of(1)
        });
        assert_eq!(how, Lookup::Miss);
    }
}
