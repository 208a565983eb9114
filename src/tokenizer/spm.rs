//! SentencePiece BPE (`tokenizer.ggml.model = llama`), as llama.cpp's `llm_tokenizer_spm`: the
//! text (spaces already replaced by `▁`) starts as one symbol per UTF-8 character; the adjacent
//! pair whose concatenation is the highest-scoring token is merged first (leftmost on ties),
//! until no pair forms a token. Symbols that are not tokens fall back to `<0xXX>` byte tokens.

use super::unicode::utf8_len;
use super::vocab::Vocab;
use std::collections::BinaryHeap;

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
}

const NIL: u32 = u32::MAX;

/// A candidate merge in the priority queue: the highest score first, then the leftmost.
#[derive(Clone, Copy, PartialEq)]
struct Bigram {
    score: f32,
    left: u32,
    right: u32,
    len: u32,
}

impl Eq for Bigram {}

impl Ord for Bigram {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// Byte-fallback tokens, found once.
#[derive(Clone, Debug)]
pub struct Spm {
    byte_tokens: [Option<u32>; 256],
}

/// Reused buffers.
#[derive(Default)]
pub struct Scratch {
    syms: Vec<Sym>,
    heap: BinaryHeap<Bigram>,
}

impl Spm {
    pub fn new(vocab: &Vocab) -> Spm {
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            let hex = format!("<0x{b:02X}>");
            // As llama.cpp: the byte token, or else the byte itself as a token (never for NUL,
            // which a C string cannot hold).
            *slot = vocab.find(hex.as_bytes()).or_else(|| {
                if b == 0 {
                    None
                } else {
                    vocab.find(&[b as u8])
                }
            });
        }
        Spm { byte_tokens }
    }

    /// Tokenize `text` (already escaped: spaces are `▁`) and append the ids to `out`.
    pub fn tokenize(&self, vocab: &Vocab, text: &[u8], out: &mut Vec<u32>, sc: &mut Scratch) {
        let syms = &mut sc.syms;
        syms.clear();
        let mut off = 0usize;
        while off < text.len() {
            let len = utf8_len(text[off]).min(text.len() - off);
            let i = syms.len() as u32;
            off += len;
            syms.push(Sym {
                start: (off - len) as u32,
                len: len as u32,
                prev: i.wrapping_sub(1),
                next: if off == text.len() { NIL } else { i + 1 },
            });
        }
        if syms.is_empty() {
            return;
        }

        let heap = &mut sc.heap;
        heap.clear();
        let try_add = |syms: &[Sym], heap: &mut BinaryHeap<Bigram>, l: u32, r: u32| {
            if l == NIL || r == NIL {
                return;
            }
            let (a, b) = (syms[l as usize], syms[r as usize]);
            let s = &text[a.start as usize..(a.start + a.len + b.len) as usize];
            if let Some(id) = vocab.find(s) {
                heap.push(Bigram {
                    score: vocab.scores[id as usize],
                    left: l,
                    right: r,
                    len: a.len + b.len,
                });
            }
        };
        for i in 1..syms.len() as u32 {
            try_add(syms, heap, i - 1, i);
        }
        while let Some(bg) = heap.pop() {
            let (l, r) = (syms[bg.left as usize], syms[bg.right as usize]);
            // Skip pairs where either side has merged since.
            if l.len == 0 || r.len == 0 || l.len + r.len != bg.len {
                continue;
            }
            syms[bg.left as usize].len += r.len;
            syms[bg.right as usize].len = 0;
            syms[bg.left as usize].next = r.next;
            if r.next != NIL {
                syms[r.next as usize].prev = bg.left;
            }
            try_add(syms, heap, l.prev, bg.left);
            try_add(syms, heap, bg.left, r.next);
        }

        let mut i = 0u32;
        while i != NIL {
            let s = syms[i as usize];
            let piece = &text[s.start as usize..(s.start + s.len) as usize];
            match vocab.find(piece) {
                Some(id) => out.push(id),
                None => out.extend(piece.iter().filter_map(|&b| self.byte_tokens[b as usize])),
            }
            i = s.next;
        }
    }
}
