//! Stage: the rows of the allocations made: block rows, strings' rows, qstrs'
//! rows and pointer edges.

use super::gifts::Gift;
use super::*;

/// Map keys formatted per run at most (see [`qstr::TextCache`]).
pub(super) const MAX_CACHED_KEYS: usize = 1 << 16;

/// What the block rows are made from, per allocation.
pub(super) struct BlockRowsIn<'a> {
    pub(super) derived: &'a [usize],
    pub(super) kinds: &'a Kinds,
    pub(super) roles: &'a Roles,
    pub(super) finaliser: &'a [bool],
    pub(super) collect: &'a [Option<bool>],
}

impl Decoder<'_> {
    /// Stage: the block rows of the `derived` allocations.
    pub(super) fn block_rows(
        &self,
        v: &View,
        r: &BlockRowsIn,
        names: &mut [Name],
        preludes: &[Option<Prelude>],
    ) -> Vec<BlockRow> {
        let mut rows = Vec::with_capacity(r.derived.len());
        for &i in r.derived {
            let a = &v.heap.allocs[i];
            let (role, detail, owner) = r.roles.of(i);
            let (base, type_address) = (r.kinds.category[i], r.kinds.type_addrs[i]);
            let category = if role != Category::Unknown { role } else { base };
            let kind = detail.kind().unwrap_or_else(|| self.base_kind(base, type_address));
            rows.push(BlockRow {
                address: v.addr_of(i),
                start_block: a.start_block,
                blocks: a.blocks,
                kind,
                category,
                owner,
                type_address,
                name: names[i].take(),
                has_finaliser: r.finaliser[i],
                collect: r.collect[i],
                marked: a.marked,
                prelude: preludes[i],
            });
        }
        rows
    }

    /// Stage: the strings' rows of the `derived` allocations holding string
    /// data: a `str`'s (its length read from the `str` that gave the role) or a
    /// REPL history line's (up to its NUL).
    pub(super) fn string_rows(
        &self,
        v: &View,
        derived: &[usize],
        roles: &Roles,
        readline: &[usize],
        texts: &mut qstr::TextCache,
    ) -> Vec<StringRow> {
        let mut rows = Vec::new();
        for &sb in derived {
            let (_, role, owner) = roles.of(sb);
            let _s = v.log.scope(sb as u32);
            let row = match (role, owner) {
                (Role::StrData, Some(owner)) => {
                    let Some(si) = v.head(owner, "str length") else { continue };
                    let len = v.object(si, "str length").str_len().unwrap_or(0);
                    let bytes = v.bytes_of(sb, "own bytes");
                    let text = bytes.get(..len.min(bytes.len() as u64) as usize).unwrap_or(&[]);
                    StringRow {
                        block: v.addr_of(sb),
                        owner: Some(owner),
                        source: "str",
                        length: len,
                        text: texts.text(text),
                    }
                }
                (Role::ReadlineLine, _) if readline.contains(&sb) => {
                    let text = v.bytes_of(sb, "own bytes").split(|b| *b == 0).next().unwrap_or(&[]);
                    let (block, length, text) = (v.addr_of(sb), text.len() as u64, texts.text(text));
                    StringRow { block, owner: None, source: "readline_hist", length, text }
                }
                _ => continue,
            };
            rows.push(row);
        }
        rows
    }

    /// Stage: the qstrs of the pools in RAM, oldest pool first (so the rows come
    /// out in id order), and the role of the chunks holding their text. A
    /// focused decode lists no qstrs: the pools did not change (what they read
    /// is read for every row), and it knows the chunks.
    pub(super) fn qstr_rows(
        &self,
        v: &View,
        pools: &QstrPools,
        qstrs: &mut qstr::QstrReader,
        texts: &mut qstr::TextCache,
        globals: &mut Vec<(usize, Gift)>,
        (rows, notes): &mut (&mut Vec<QstrRow>, &mut Vec<String>),
    ) {
        let chunk_gift = Gift { category: Category::QstrChunk, role: Role::QstrChunk, owner: None };
        let _global = v.log.scope(GLOBAL);
        if let Some(chunks) = pools.known_chunks {
            for &b in chunks {
                if let Some(i) = v.head(v.heap.g.block_address(b), "qstr chunk") {
                    globals.push((i, chunk_gift));
                }
            }
            return;
        }
        let header_words = self.profile.objects.qstr_pool_header_words as u64;
        for h in pools.ram_pools.iter().rev() {
            let Some(pi) = v.head(h.address, "qstr pool") else {
                notes.push(format!("qstr pool 0x{:08x} is not an allocated block", h.address));
                continue;
            };
            let capacity = (v.bytes_of(pi, "qstr pool").len() as u64 / v.word).saturating_sub(header_words);
            for (id, d) in qstrs.entries(h, capacity) {
                let chunk = v.containing(d.address, "qstr chunk");
                if let Some(ci) = chunk {
                    // (A chunk's qstrs follow one another: it is given its role once.)
                    if globals.last() != Some(&(ci, chunk_gift)) {
                        globals.push((ci, chunk_gift));
                    }
                }
                rows.push(QstrRow {
                    pool: h.address,
                    chunk: chunk.map(|c| v.addr_of(c)),
                    id,
                    address: d.address,
                    hash: d.hash,
                    length: d.text.len() as u64,
                    text: texts.text(d.text),
                });
            }
        }
    }

    /// Stage: the pointer edges of the `derived` allocations: every word whose
    /// value is a block-aligned RAM address, with its map key when the word is a
    /// value slot of a map table.
    pub(super) fn pointer_edges(
        &self,
        v: &View,
        derived: &[usize],
        categories: &[Category],
        qstrs: &mut qstr::QstrReader,
        cache: &mut DecodeCache,
        edges: &mut Vec<EdgeRow>,
    ) {
        let (o, heap) = (&self.profile.objects, v.heap);
        let obj_words = (v.obj_bytes / v.word).max(1);
        // Only block-aligned RAM addresses (as `in_ram` has it): most words are not.
        let ram = self.firmware.ram_start.saturating_add(1)..self.firmware.ram_end;
        for &i in derived {
            let _s = v.log.scope(i as u32);
            let is_map_table = categories[i] == Category::MapTable;
            let (address, data) = (v.addr_of(i), v.bytes_of(i, "own bytes"));
            scan::candidates(data, v.word as usize, heap.g.bytes_per_block, ram.clone(), |k, w| {
                let k = k as u64;
                let to = v.containing(w, "pointer target");
                let mut map_key = None;
                // A value slot: the second `mp_obj_t` of a pair (its low word).
                if is_map_table && k % (2 * obj_words) == obj_words {
                    let key = v.obj_at(data, k / obj_words - 1).unwrap_or(0);
                    // MP_OBJ_NULL and MP_OBJ_SENTINEL mark empty and deleted slots.
                    if key != o.map_empty_key && key != o.map_deleted_key {
                        map_key = Some(self.key_text(key, qstrs, cache));
                    }
                }
                edges.push(EdgeRow {
                    from_address: Some(address),
                    from_block: Some(heap.allocs[i].start_block),
                    from_word: Some(k as u32),
                    root_address: None,
                    root_name: None,
                    to_address: w,
                    to_alloc_address: to.map(|j| v.addr_of(j)),
                    to_block: to.map(|j| heap.allocs[j].start_block),
                    map_key,
                });
            });
        }
    }

    /// A map key as the reference prints it; qstrs are looked up in this snapshot's
    /// pools, other keys are formatted once per run.
    pub(super) fn key_text(&self, key: u64, qstrs: &mut qstr::QstrReader, cache: &mut DecodeCache) -> Arc<str> {
        let repr = self.profile.object_repr;
        if let Immediate::Qstr(q) = repr.decode(key, self.profile.heap.word_bytes, self.profile.immediate_objects) {
            return qstrs.text(q, &mut cache.texts).unwrap_or_else(|| Arc::from(format!("<qstr {q}>")));
        }
        if let Some(t) = cache.keys.get(&key) {
            return Arc::clone(t);
        }
        let t: Arc<str> = self.format_object(key, qstrs, &mut cache.texts).into();
        if cache.keys.len() < MAX_CACHED_KEYS {
            cache.keys.insert(key, Arc::clone(&t));
        }
        t
    }
}
