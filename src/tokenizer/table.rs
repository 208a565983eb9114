//! Small hash tables built for speed of construction: a string table (all strings in one arena,
//! open addressing over their indices) and a map from pairs of `u32` to a `u64`.
//!
//! Loading a 262k-token vocabulary must take milliseconds, so there is no allocation per string.

/// A fast, non-cryptographic hash of a byte string (8 bytes at a time).
#[inline]
fn hash_bytes(b: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap());
        h = (h.rotate_left(23) ^ w).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
    }
    // murmur3's finalizer: every output bit depends on every input bit.
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

const EMPTY: u32 = u32::MAX;

/// Byte strings numbered in insertion order, with lookup by content.
///
/// `push` always adds a new entry, and lookups then find the newest entry with that content
/// (as llama.cpp's `token_to_id[text] = id`, where a later duplicate wins).
#[derive(Clone, Debug, Default)]
pub struct StrTable {
    bytes: Vec<u8>,
    /// Start of each entry in `bytes`, plus one past the end.
    offs: Vec<u32>,
    /// Open addressing. Each slot has the high half of its entry's hash, which saves most
    /// string comparisons, and where the entry's bytes are, which saves a look at `offs`.
    slots: Vec<Slot>,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    id: u32,
    tag: u32,
    off: u32,
    len: u32,
}

const FREE: Slot = Slot {
    id: EMPTY,
    tag: 0,
    off: 0,
    len: 0,
};

impl StrTable {
    pub fn with_capacity(n: usize, bytes: usize) -> StrTable {
        let mut offs = Vec::with_capacity(n + 1);
        offs.push(0);
        StrTable {
            bytes: Vec::with_capacity(bytes),
            offs,
            slots: vec![FREE; Self::n_slots(n)],
        }
    }

    /// Slots for `n` entries: from a third to two thirds full.
    fn n_slots(n: usize) -> usize {
        (n + n / 2 + 16).next_power_of_two()
    }

    pub fn len(&self) -> usize {
        self.offs.len() - 1
    }

    /// Bytes of all entries together.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The bytes of entry `i`.
    #[inline]
    pub fn get_str(&self, i: u32) -> &[u8] {
        let i = i as usize;
        &self.bytes[self.offs[i] as usize..self.offs[i + 1] as usize]
    }

    /// The newest entry equal to `s`.
    #[inline]
    pub fn get(&self, s: &[u8]) -> Option<u32> {
        let h = hash_bytes(s);
        let tag = (h >> 32) as u32;
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let e = self.slots[i];
            if e.id == EMPTY {
                return None;
            }
            if e.tag == tag
                && e.len as usize == s.len()
                && &self.bytes[e.off as usize..(e.off + e.len) as usize] == s
            {
                return Some(e.id);
            }
            i = (i + 1) & mask;
        }
    }

    /// Add many entries at once, then index them all: much faster than `push` one by one for a
    /// big vocabulary, as the slots are filled in order instead of at random.
    pub fn extend_bulk<'a>(&mut self, items: impl IntoIterator<Item = &'a [u8]>) {
        for s in items {
            self.bytes.extend_from_slice(s);
            assert!(
                self.bytes.len() <= u32::MAX as usize,
                "string table over 4 GiB"
            );
            self.offs.push(self.bytes.len() as u32);
        }
        let n = self.len();
        let n_slots = Self::n_slots(n).max(self.slots.len());
        let mask = n_slots - 1;
        let hashes: Vec<u64> = (0..n as u32)
            .map(|id| hash_bytes(self.get_str(id)))
            .collect();
        // Counting sort by the top bits of the home slot (stable, so equal strings stay oldest
        // first): the slots are then written nearly in order.
        let shift = n_slots.trailing_zeros().saturating_sub(16);
        let bucket = |h: u64| (h as usize & mask) >> shift;
        let mut start = vec![0u32; (mask >> shift) + 2];
        for &h in &hashes {
            start[bucket(h) + 1] += 1;
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut order = vec![0u32; n];
        for (id, &h) in hashes.iter().enumerate() {
            let b = bucket(h);
            order[start[b] as usize] = id as u32;
            start[b] += 1;
        }
        self.slots = vec![FREE; n_slots];
        for id in order {
            self.insert_hashed(id, hashes[id as usize]);
        }
    }

    /// Add `s` as a new entry and return its index.
    pub fn push(&mut self, s: &[u8]) -> u32 {
        let id = self.len() as u32;
        self.bytes.extend_from_slice(s);
        assert!(
            self.bytes.len() <= u32::MAX as usize,
            "string table over 4 GiB"
        );
        self.offs.push(self.bytes.len() as u32);
        if Self::n_slots(self.len()) > self.slots.len() {
            self.slots = vec![FREE; Self::n_slots(self.len())];
            for id in 0..self.len() as u32 {
                self.insert_slot(id);
            }
        } else {
            self.insert_slot(id);
        }
        id
    }

    /// The newest entry equal to `s`, adding it if there is none.
    pub fn intern(&mut self, s: &[u8]) -> u32 {
        match self.get(s) {
            Some(i) => i,
            None => self.push(s),
        }
    }

    fn insert_slot(&mut self, id: u32) {
        self.insert_hashed(id, hash_bytes(self.get_str(id)));
    }

    fn insert_hashed(&mut self, id: u32, h: u64) {
        let tag = (h >> 32) as u32;
        let off = self.offs[id as usize];
        let slot = Slot {
            id,
            tag,
            off,
            len: self.offs[id as usize + 1] - off,
        };
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let e = self.slots[i];
            if e.id == EMPTY {
                self.slots[i] = slot;
                return;
            }
            if e.tag == tag && self.get_str(e.id) == self.get_str(id) {
                self.slots[i] = slot; // the newer entry wins
                return;
            }
            i = (i + 1) & mask;
        }
    }
}

/// A map from `(u32, u32)` to `u64` (open addressing; the first insertion of a key wins).
#[derive(Clone, Debug, Default)]
pub struct PairMap {
    keys: Vec<u64>,
    vals: Vec<u64>,
    len: usize,
}

const NO_KEY: u64 = u64::MAX;

impl PairMap {
    pub fn with_capacity(n: usize) -> PairMap {
        let cap = (2 * n).next_power_of_two().max(16);
        PairMap {
            keys: vec![NO_KEY; cap],
            vals: vec![0; cap],
            len: 0,
        }
    }

    #[inline]
    fn slot(key: u64, mask: usize) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) as usize & mask
    }

    #[inline]
    pub fn get(&self, a: u32, b: u32) -> Option<u64> {
        let key = ((a as u64) << 32) | b as u64;
        let mask = self.keys.len() - 1;
        let mut i = Self::slot(key, mask);
        loop {
            let k = self.keys[i];
            if k == key {
                return Some(self.vals[i]);
            }
            if k == NO_KEY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Insert unless the key is there already; returns whether it was inserted.
    pub fn insert(&mut self, a: u32, b: u32, val: u64) -> bool {
        // (u32::MAX, u32::MAX) is the empty marker; string table indices never get that high.
        let key = ((a as u64) << 32) | b as u64;
        if 2 * (self.len + 1) > self.keys.len() {
            self.grow();
        }
        let mask = self.keys.len() - 1;
        let mut i = Self::slot(key, mask);
        loop {
            let k = self.keys[i];
            if k == key {
                return false;
            }
            if k == NO_KEY {
                self.keys[i] = key;
                self.vals[i] = val;
                self.len += 1;
                return true;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let old_k = std::mem::take(&mut self.keys);
        let old_v = std::mem::take(&mut self.vals);
        let cap = (old_k.len() * 2).max(16);
        self.keys = vec![NO_KEY; cap];
        self.vals = vec![0; cap];
        self.len = 0;
        for (k, v) in old_k.into_iter().zip(old_v) {
            if k != NO_KEY {
                self.insert((k >> 32) as u32, k as u32, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_table() {
        let mut t = StrTable::with_capacity(2, 8);
        assert_eq!(t.push(b"a"), 0);
        assert_eq!(t.push(b"bc"), 1);
        assert_eq!(t.push(b"a"), 2); // duplicate: the newer one is found
        assert_eq!(t.get(b"a"), Some(2));
        assert_eq!(t.get(b"bc"), Some(1));
        assert_eq!(t.get(b"b"), None);
        assert_eq!(t.get(b""), None);
        for i in 0..1000u32 {
            t.intern(format!("s{i}").as_bytes());
        }
        assert_eq!(t.len(), 1003);
        assert_eq!(t.get(b"s999"), Some(1002));
        assert_eq!(t.get_str(1), b"bc");
        assert_eq!(t.intern(b"bc"), 1);
    }

    #[test]
    fn pair_map() {
        let mut m = PairMap::with_capacity(1);
        assert!(m.insert(1, 2, 10));
        assert!(!m.insert(1, 2, 11)); // first wins
        assert!(m.insert(2, 1, 12));
        for i in 0..1000 {
            m.insert(i, i + 7, i as u64);
        }
        assert_eq!(m.get(1, 2), Some(10));
        assert_eq!(m.get(2, 1), Some(12));
        assert_eq!(m.get(500, 507), Some(500));
        assert_eq!(m.get(3, 3), None);
    }
}

/// Byte strings by index, without lookup by content.
#[derive(Clone, Debug)]
pub struct Arena {
    bytes: Vec<u8>,
    offs: Vec<u32>,
}

impl Arena {
    pub fn with_capacity(n: usize, bytes: usize) -> Arena {
        let mut offs = Vec::with_capacity(n + 1);
        offs.push(0);
        Arena {
            bytes: Vec::with_capacity(bytes),
            offs,
        }
    }

    pub fn push(&mut self, s: &[u8]) {
        self.bytes.extend_from_slice(s);
        assert!(self.bytes.len() <= u32::MAX as usize, "arena over 4 GiB");
        self.offs.push(self.bytes.len() as u32);
    }

    #[inline]
    pub fn get(&self, i: usize) -> &[u8] {
        &self.bytes[self.offs[i] as usize..self.offs[i + 1] as usize]
    }
}
