//! Qstr pools (py/qstr.c): the chain from `vm.last_pool` through `prev`, the RAM
//! pools' entries, and id → text lookups across RAM and flash pools.
//!
//! The chain and every length in it come from the dump, so walks are bounded by a
//! step count and a visited set, and entry counts by the bytes actually there.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::memory::{le_word, Memory};
use crate::profile::{Profile, QstrPoolFormat};

/// Upper bound on pools followed through `prev` (MicroPython doubles each pool, so a
/// real chain is a few dozen long at most).
const MAX_POOLS: usize = 4096;

/// One qstr pool's header (`qstr_pool_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolHeader {
    pub address: u64,
    pub prev: u64,
    pub total_prev_len: u64,
    pub alloc: u64,
    pub len: u64,
}

/// A qstr's stored form: hash, length and the bytes, at `address`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QstrData<'m> {
    pub address: u64,
    pub hash: u64,
    pub text: &'m [u8],
}

/// Texts already made, by their bytes: consecutive snapshots hold the same qstrs,
/// keys and names, so one worker makes each text once per run of snapshots and
/// shares it (as equal `Arc`s, which also compare by pointer first).
#[derive(Default)]
pub struct TextCache {
    texts: FxHashMap<Box<[u8]>, Arc<str>>,
}

/// Texts kept per run at most: input-controlled data cannot make the cache grow
/// without bound (past it, texts are made afresh each time).
const MAX_CACHED_TEXTS: usize = 1 << 16;

impl TextCache {
    pub fn text(&mut self, bytes: &[u8]) -> Arc<str> {
        if let Some(t) = self.texts.get(bytes) {
            return Arc::clone(t);
        }
        let t: Arc<str> = Arc::from(String::from_utf8_lossy(bytes).as_ref());
        if self.texts.len() < MAX_CACHED_TEXTS {
            self.texts.insert(bytes.into(), Arc::clone(&t));
        }
        t
    }
}

pub struct QstrReader<'m> {
    mem: Memory<'m>,
    word: u64,
    header_words: u64,
    hash_bytes: u64,
    len_bytes: u64,
    format: QstrPoolFormat,
    hashes_word: Option<u64>,
    lengths_word: u64,
    /// Where the pool header's words are.
    layout: crate::profile::QstrLayout,
    /// Every pool reachable from `last_pool`, newest first (RAM and flash).
    pub chain: Vec<PoolHeader>,
    /// Id → text in this snapshot.
    cache: FxHashMap<u64, Option<Arc<str>>>,
}

impl<'m> QstrReader<'m> {
    pub fn new(mem: Memory<'m>, profile: &Profile, last_pool: u64) -> Self {
        let mut r = QstrReader {
            mem,
            word: profile.heap.word_bytes as u64,
            header_words: profile.objects.qstr_pool_header_words as u64,
            hash_bytes: profile.qstr.hash_bytes as u64,
            len_bytes: profile.qstr.len_bytes as u64,
            format: profile.qstr.pool_format,
            hashes_word: profile.qstr.hashes_word.map(u64::from),
            lengths_word: profile.qstr.lengths_word as u64,
            layout: profile.qstr.clone(),
            chain: Vec::new(),
            cache: FxHashMap::default(),
        };
        let mut seen = FxHashSet::default();
        let mut pool = last_pool;
        while pool != 0 && r.chain.len() < MAX_POOLS && seen.insert(pool) {
            let Some(h) = r.header(pool) else { break };
            r.chain.push(h);
            pool = h.prev;
        }
        r
    }

    fn header(&self, address: u64) -> Option<PoolHeader> {
        // `address` is a pointer read from the snapshot: any value, so checked.
        let w = |i: u32| self.mem.word(address.checked_add(i as u64 * self.word)?, "qstr pool header").ok();
        let q = &self.layout;
        let mut total_prev_len = w(q.pool_total_prev_len_word)?;
        if self.format == QstrPoolFormat::Arrays {
            // `total_prev_len : (8 * sizeof(size_t) - 1)` shares its word with `is_sorted`.
            total_prev_len &= (1u64 << (self.word * 8 - 1)) - 1;
        }
        let (prev, alloc, len) = (w(q.pool_prev_word)?, w(q.pool_alloc_word)?, w(q.pool_len_word)?);
        Some(PoolHeader { address, prev, total_prev_len, alloc, len })
    }

    /// Address of entry `i` of the pool at `pool`.
    fn entry(&self, pool: u64, i: u64) -> Option<u64> {
        let at = pool.checked_add((self.header_words + i).checked_mul(self.word)?)?;
        self.mem.word(at, "qstr pool entry").ok()
    }

    /// Entries `0..n` of one pool with their data, `n` = `len` capped by
    /// `max_entries` (what the pool's block can hold). `alloc` is no bound: the ROM
    /// pool's is set small on purpose so the first RAM pool gets a sensible size.
    pub fn entries(&self, h: &PoolHeader, max_entries: u64) -> Vec<(u64, QstrData<'m>)> {
        let n = h.len.min(max_entries);
        (0..n).filter_map(|i| Some((h.total_prev_len.checked_add(i)?, self.entry_data(h, i)?))).collect()
    }

    /// Entry `i` of pool `h`: where its text is, its hash and its text.
    fn entry_data(&self, h: &PoolHeader, i: u64) -> Option<QstrData<'m>> {
        let ptr = self.entry(h.address, i)?;
        match self.format {
            QstrPoolFormat::Prefixed => self.data_at(ptr),
            QstrPoolFormat::Arrays => {
                let array = |word: u64, size: u64| -> Option<u64> {
                    let base = self.mem.word(h.address.checked_add(word * self.word)?, "qstr pool array").ok()?;
                    let at = base.checked_add(i.checked_mul(size)?)?;
                    self.mem.bytes(at, size, "qstr pool array").ok().map(le_word)
                };
                let len = array(self.lengths_word, self.len_bytes)?;
                let hash = match self.hashes_word {
                    Some(w) => array(w, self.hash_bytes)?,
                    None => 0,
                };
                let text = self.mem.bytes(ptr, len, "qstr data").ok()?;
                Some(QstrData { address: ptr, hash, text })
            }
        }
    }

    /// Hash, length prefix and bytes of the qstr stored at `address`.
    pub fn data_at(&self, address: u64) -> Option<QstrData<'m>> {
        let prefix = self.mem.bytes(address, self.hash_bytes + self.len_bytes, "qstr data").ok()?;
        let hash = le_word(prefix.get(..self.hash_bytes as usize)?);
        let len = le_word(prefix.get(self.hash_bytes as usize..)?);
        let text = self.mem.bytes(address.checked_add(self.hash_bytes + self.len_bytes)?, len, "qstr data").ok()?;
        Some(QstrData { address, hash, text })
    }

    /// Text of qstr `id`, found in the pool whose range holds it.
    pub fn text(&mut self, id: u64, texts: &mut TextCache) -> Option<Arc<str>> {
        if let Some(hit) = self.cache.get(&id) {
            return hit.clone();
        }
        let found = self
            .chain
            .iter()
            .find(|h| id >= h.total_prev_len && id - h.total_prev_len < h.len)
            .and_then(|h| self.entry_data(h, id - h.total_prev_len))
            .map(|d| texts.text(d.text));
        self.cache.insert(id, found.clone());
        found
    }
}
