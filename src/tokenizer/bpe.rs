//! GPT-2 byte-level BPE: each word's bytes stand for printable characters (the byte-to-unicode
//! map), then adjacent symbols are merged by rank, lowest rank and then leftmost first, as
//! llama.cpp's `llm_tokenizer_bpe_session`.
//!
//! Strings are interned: every vocabulary token, every merge side and every merge result gets an
//! index in one string table (the first `n_vocab` indices are the tokens), so merging compares
//! integers instead of strings.

use super::pretok::{self, PreInfo, Stage};
use super::table::{PairMap, StrTable};
use super::unicode::{byte_to_char, decode_all, push_utf8, Flags};
use super::vocab::Vocab;
use crate::gguf::Gguf;
use anyhow::{Context, Result};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The merge table and pre-tokenizer of a byte-level BPE vocabulary.
#[derive(Clone, Debug)]
pub struct Bpe {
    /// Vocabulary strings (indices below `n_vocab` are token ids) followed by merge pieces that
    /// are not tokens.
    strings: StrTable,
    n_vocab: u32,
    /// (left, right) string index -> rank << 32 | merged string index.
    merges: PairMap,
    /// The string index of each byte's printable character.
    byte_sym: [u32; 256],
    stages: Vec<Stage>,
    ignore_merges: bool,
}

/// Reused buffers for tokenizing.
#[derive(Default)]
pub struct Scratch {
    cpts: Vec<u32>,
    flags: Vec<Flags>,
    words: Vec<usize>,
    split_tmp: Vec<usize>,
    word: Vec<u8>,
    enc: Vec<u8>,
    syms: Vec<Sym>,
    heap: BinaryHeap<Reverse<(u32, u32, u32, u32)>>,
    short: Vec<u32>,
    ranks: Vec<u64>,
}

/// Words up to this many bytes merge by scanning the pairs (quadratic, but no heap); longer ones
/// use a priority queue. Both take the lowest rank, leftmost first, so the result is the same.
const SHORT_WORD: usize = 32;

#[derive(Clone, Copy)]
struct Sym {
    /// String index of the symbol's text.
    s: u32,
    prev: u32,
    next: u32,
    /// Merged into its left neighbour.
    gone: bool,
}

const NIL: u32 = u32::MAX;

/// Append the printable form of `bytes` (each byte as its GPT-2 character) to `out`.
fn byte_encode(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        let c = byte_to_char(b);
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

impl Bpe {
    pub fn load(g: &Gguf, vocab: &Vocab, pre: PreInfo) -> Result<Bpe> {
        let mut strings = vocab.strings.clone();
        let n_vocab = vocab.n_tokens() as u32;
        let key = "tokenizer.ggml.merges";
        let merge_list = g
            .get_str_array(key)
            .context("a gpt2 tokenizer needs tokenizer.ggml.merges")?;
        let mut merges = PairMap::with_capacity(merge_list.len());
        let mut joined = Vec::new();
        for (rank, m) in merge_list.enumerate() {
            // "left right", split at the first space after the first byte.
            let Some(sp) = m.iter().skip(1).position(|&b| b == b' ').map(|p| p + 1) else {
                continue;
            };
            let (l, r) = (&m[..sp], &m[sp + 1..]);
            if l.is_empty() || r.is_empty() {
                continue;
            }
            let li = strings.intern(l);
            let ri = strings.intern(r);
            joined.clear();
            joined.extend_from_slice(l);
            joined.extend_from_slice(r);
            let ji = strings.intern(&joined);
            merges.insert(li, ri, ((rank as u64) << 32) | ji as u64);
        }
        let mut byte_sym = [0u32; 256];
        for (b, slot) in byte_sym.iter_mut().enumerate() {
            let mut enc = Vec::new();
            byte_encode(&[b as u8], &mut enc);
            *slot = strings.intern(&enc);
        }
        Ok(Bpe {
            strings,
            n_vocab,
            merges,
            byte_sym,
            stages: pretok::stages(pre.kind),
            ignore_merges: pre.ignore_merges,
        })
    }

    /// Tokenize one fragment of raw text (no special tokens in it) and append the ids to `out`.
    pub fn tokenize(&self, text: &[u8], out: &mut Vec<u32>, sc: &mut Scratch) {
        decode_all(text, &mut sc.cpts);
        sc.flags.clear();
        sc.flags.extend(sc.cpts.iter().map(|&c| Flags::of(c)));
        pretok::split(
            &self.stages,
            &sc.cpts,
            &sc.flags,
            &mut sc.words,
            &mut sc.split_tmp,
        );
        let mut start = 0;
        let words = std::mem::take(&mut sc.words);
        for &len in &words {
            let mut word = std::mem::take(&mut sc.word);
            word.clear();
            for &c in &sc.cpts[start..start + len] {
                push_utf8(c, &mut word);
            }
            self.tokenize_word(&word, out, sc);
            sc.word = word;
            start += len;
        }
        sc.words = words;
    }

    fn token_of(&self, s: u32) -> Option<u32> {
        (s < self.n_vocab).then_some(s)
    }

    fn tokenize_word(&self, word: &[u8], out: &mut Vec<u32>, sc: &mut Scratch) {
        if word.is_empty() {
            return;
        }
        if self.ignore_merges {
            // A word that is a whole token is taken as it is.
            sc.enc.clear();
            byte_encode(word, &mut sc.enc);
            if let Some(id) = self.strings.get(&sc.enc).and_then(|s| self.token_of(s)) {
                out.push(id);
                return;
            }
        }

        if word.len() <= SHORT_WORD {
            self.merge_short(word, sc);
            for i in 0..sc.short.len() {
                self.emit(sc.short[i], out);
            }
            return;
        }
        let syms = &mut sc.syms;
        syms.clear();
        let n = word.len() as u32;
        for (i, &b) in word.iter().enumerate() {
            let i = i as u32;
            syms.push(Sym {
                s: self.byte_sym[b as usize],
                prev: i.wrapping_sub(1),
                next: if i + 1 < n { i + 1 } else { NIL },
                gone: false,
            });
        }
        let heap = &mut sc.heap;
        heap.clear();
        let pair = |syms: &[Sym], l: u32, r: u32| -> Option<Reverse<(u32, u32, u32, u32)>> {
            let (ls, rs) = (syms[l as usize].s, syms[r as usize].s);
            self.merges
                .get(ls, rs)
                .map(|v| Reverse(((v >> 32) as u32, l, ls, rs)))
        };
        for i in 1..n {
            if let Some(p) = pair(syms, i - 1, i) {
                heap.push(p);
            }
        }
        while let Some(Reverse((_, l, ls, rs))) = heap.pop() {
            let left = syms[l as usize];
            if left.gone || left.s != ls || left.next == NIL {
                continue;
            }
            let r = left.next;
            let right = syms[r as usize];
            if right.s != rs {
                continue; // outdated: one side has merged since
            }
            let merged = self.merges.get(ls, rs).unwrap() as u32;
            syms[l as usize].s = merged;
            syms[l as usize].next = right.next;
            syms[r as usize].gone = true;
            if right.next != NIL {
                syms[right.next as usize].prev = l;
            }
            if left.prev != NIL {
                if let Some(p) = pair(syms, left.prev, l) {
                    heap.push(p);
                }
            }
            if right.next != NIL {
                if let Some(p) = pair(syms, l, right.next) {
                    heap.push(p);
                }
            }
        }

        let mut i = 0u32;
        while i != NIL {
            self.emit(syms[i as usize].s, out);
            i = syms[i as usize].next;
        }
    }

    /// The rank and result of merging strings `a` and `b`, as `rank << 32 | merged`; `u64::MAX`
    /// if they do not merge.
    #[inline]
    fn pair(&self, a: u32, b: u32) -> u64 {
        self.merges.get(a, b).unwrap_or(u64::MAX)
    }

    /// Merge a short word's bytes into `sc.short` (string indices).
    fn merge_short(&self, word: &[u8], sc: &mut Scratch) {
        let s = &mut sc.short;
        s.clear();
        s.extend(word.iter().map(|&b| self.byte_sym[b as usize]));
        let r = &mut sc.ranks;
        r.clear();
        r.extend(s.windows(2).map(|w| self.pair(w[0], w[1])));
        loop {
            // The lowest rank; equal values are the same merge, and the first one is leftmost.
            let mut best = u64::MAX;
            let mut at = 0;
            for (i, &v) in r.iter().enumerate() {
                if v < best {
                    best = v;
                    at = i;
                }
            }
            if best == u64::MAX {
                return;
            }
            s[at] = best as u32;
            s.remove(at + 1);
            r.remove(at);
            if at > 0 {
                r[at - 1] = self.pair(s[at - 1], s[at]);
            }
            if at < r.len() {
                r[at] = self.pair(s[at], s[at + 1]);
            }
        }
    }

    /// Append the token for string `s`, or if it is no token, the tokens of its bytes.
    #[inline]
    fn emit(&self, s: u32, out: &mut Vec<u32>) {
        match self.token_of(s) {
            Some(id) => out.push(id),
            None => {
                // Each byte of its printable form, where that is a token (as llama.cpp).
                for &b in self.strings.get_str(s) {
                    if let Some(id) = self.strings.get(&[b]).and_then(|x| self.token_of(x)) {
                        out.push(id);
                    }
                }
            }
        }
    }
}
