//! Splitting text on special-token strings before tokenizing, as llama.cpp's
//! `tokenizer_st_partition`.
//!
//! llama.cpp takes the control, user-defined and unknown tokens longest first, and for each one
//! cuts every occurrence out of the text fragments that are still raw. That is the same as:
//! find every occurrence of every such token, then accept them by (length descending, position
//! ascending), skipping an occurrence that overlaps one already accepted. All occurrences are
//! found in one pass with a byte trie, so long texts and vocabularies with thousands of special
//! tokens (Gemma has over six thousand) stay fast.

use super::vocab::{attr, Vocab};
use std::collections::HashMap;

/// A piece of the input: raw text (a byte range) or a special token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    Text(usize, usize),
    Token(u32),
}

#[derive(Clone, Debug)]
pub struct SpecialMatcher {
    /// Trie over the token strings: (node, byte) -> child node.
    edges: HashMap<(u32, u8), u32>,
    /// Token ending at each node, if any.
    value: Vec<Option<u32>>,
    /// Whether a token starts with this byte (to skip most positions at once).
    first: [bool; 256],
    /// Priority of each special token: its position in llama.cpp's order (longest first).
    rank: HashMap<u32, u32>,
}

/// `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

impl SpecialMatcher {
    pub fn new(vocab: &Vocab) -> SpecialMatcher {
        let mut ids: Vec<u32> = (0..vocab.n_tokens() as u32)
            .filter(|&id| {
                vocab.attr(id) & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0
            })
            .collect();
        // Longest first; llama.cpp's sort leaves ties unordered, nib keeps them by id.
        ids.sort_by_key(|&id| std::cmp::Reverse(vocab.text(id).len()));
        let mut m = SpecialMatcher {
            edges: HashMap::new(),
            value: vec![None],
            first: [false; 256],
            rank: HashMap::new(),
        };
        for (rank, &id) in ids.iter().enumerate() {
            let text = vocab.text(id);
            m.rank.insert(id, rank as u32);
            m.first[text[0] as usize] = true;
            let mut node = 0u32;
            for &b in text {
                node = match m.edges.get(&(node, b)) {
                    Some(&c) => c,
                    None => {
                        let c = m.value.len() as u32;
                        m.value.push(None);
                        m.edges.insert((node, b), c);
                        c
                    }
                };
            }
            // Two tokens with one string: the first in priority order is the one found.
            if m.value[node as usize].is_none() {
                m.value[node as usize] = Some(id);
            }
        }
        m
    }

    /// Cut `text` into raw fragments and special tokens. With `parse_special` false only
    /// user-defined tokens are cut out (as llama.cpp: control and unknown tokens are then text).
    pub fn partition(
        &self,
        vocab: &Vocab,
        text: &[u8],
        parse_special: bool,
        out: &mut Vec<Fragment>,
    ) {
        out.clear();
        if text.is_empty() {
            return;
        }
        let usable =
            |id: u32| parse_special || vocab.attr(id) & (attr::CONTROL | attr::UNKNOWN) == 0;

        // Every occurrence: (rank, start, id).
        let mut occ: Vec<(u32, usize, u32)> = Vec::new();
        if !self.rank.is_empty() {
            for start in 0..text.len() {
                if !self.first[text[start] as usize] {
                    continue;
                }
                let mut node = 0u32;
                for &b in &text[start..] {
                    match self.edges.get(&(node, b)) {
                        Some(&c) => node = c,
                        None => break,
                    }
                    if let Some(id) = self.value[node as usize] {
                        if usable(id) {
                            occ.push((self.rank[&id], start, id));
                        }
                    }
                }
            }
        }
        if occ.is_empty() {
            out.push(Fragment::Text(0, text.len()));
            return;
        }
        occ.sort_unstable();

        // 0: raw text, 1: inside an accepted token, 2: whitespace stripped next to a token.
        let mut state = vec![0u8; text.len()];
        let mut accepted: Vec<(usize, u32)> = Vec::new();
        for &(_, start, id) in &occ {
            let len = vocab.text(id).len();
            if state[start..start + len].iter().any(|&s| s != 0) {
                continue;
            }
            state[start..start + len].fill(1);
            accepted.push((start, id));
            let a = vocab.attr(id);
            if a & attr::LSTRIP != 0 {
                let mut i = start;
                while i > 0 && state[i - 1] == 0 && is_c_space(text[i - 1]) {
                    i -= 1;
                    state[i] = 2;
                }
            }
            if a & attr::RSTRIP != 0 {
                let mut i = start + len;
                while i < text.len() && state[i] == 0 && is_c_space(text[i]) {
                    state[i] = 2;
                    i += 1;
                }
            }
        }
        accepted.sort_unstable();

        let mut pos = 0;
        let push_text = |from: usize, to: usize, out: &mut Vec<Fragment>| {
            // Raw runs between `from` and `to`, leaving out stripped whitespace.
            let mut i = from;
            while i < to {
                while i < to && state[i] != 0 {
                    i += 1;
                }
                let s = i;
                while i < to && state[i] == 0 {
                    i += 1;
                }
                if i > s {
                    out.push(Fragment::Text(s, i));
                }
            }
        };
        for &(start, id) in &accepted {
            push_text(pos, start, out);
            out.push(Fragment::Token(id));
            pos = start + vocab.text(id).len();
        }
        push_text(pos, text.len(), out);
    }
}
