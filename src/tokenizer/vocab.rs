//! The vocabulary: token strings, scores and attributes from GGUF metadata, the special token ids,
//! and the token attributes llama.cpp derives from token names (end of generation, unused, ...).

use super::table::StrTable;
use crate::gguf::{Gguf, ValueType};
use anyhow::{bail, Context, Result};

/// Token attributes, as llama.cpp's `llama_token_attr` bits.
pub mod attr {
    pub const UNDEFINED: u16 = 0;
    pub const UNKNOWN: u16 = 1 << 0;
    pub const UNUSED: u16 = 1 << 1;
    pub const NORMAL: u16 = 1 << 2;
    pub const CONTROL: u16 = 1 << 3;
    pub const USER_DEFINED: u16 = 1 << 4;
    pub const BYTE: u16 = 1 << 5;
    pub const LSTRIP: u16 = 1 << 7;
    pub const RSTRIP: u16 = 1 << 8;
}

/// The attribute for a GGUF `token_type` value.
fn attr_of_type(t: i64) -> u16 {
    match t {
        1 => attr::NORMAL,
        2 => attr::UNKNOWN,
        3 => attr::CONTROL,
        4 => attr::USER_DEFINED,
        5 => attr::UNUSED,
        6 => attr::BYTE,
        _ => attr::UNDEFINED,
    }
}

/// Which tokenizer algorithm the vocabulary is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// SentencePiece BPE (`tokenizer.ggml.model = llama`).
    Spm,
    /// GPT-2 byte-level BPE (`tokenizer.ggml.model = gpt2`).
    Bpe,
}

/// Special token ids (`None`: the model has none).
#[derive(Clone, Copy, Debug, Default)]
pub struct Specials {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub unk: Option<u32>,
    pub sep: Option<u32>,
    pub pad: Option<u32>,
    pub mask: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
}

/// Token strings, scores and attributes, with lookup by string.
#[derive(Clone, Debug)]
pub struct Vocab {
    pub kind: Kind,
    /// Token strings by id (entries past `n_tokens` are never added here).
    pub strings: StrTable,
    pub scores: Vec<f32>,
    pub attrs: Vec<u16>,
    pub specials: Specials,
    /// End-of-generation tokens, sorted.
    pub eog: Vec<u32>,
}

/// An optional integer array of at least `n` elements.
fn opt_int_array(g: &Gguf, key: &str, n: usize) -> Result<Option<Vec<i64>>> {
    if !g.contains_key(key) {
        return Ok(None);
    }
    let v = g.get_int_array(key)?;
    if v.len() < n {
        bail!("{key} has {} entries for {n} tokens", v.len());
    }
    Ok(Some(v))
}

fn opt_id(g: &Gguf, key: &str) -> Option<u32> {
    g.get_u32(key).ok()
}

impl Vocab {
    pub fn n_tokens(&self) -> usize {
        self.attrs.len()
    }

    pub fn text(&self, id: u32) -> &[u8] {
        if (id as usize) < self.n_tokens() {
            self.strings.get_str(id)
        } else {
            &[]
        }
    }

    pub fn attr(&self, id: u32) -> u16 {
        self.attrs
            .get(id as usize)
            .copied()
            .unwrap_or(attr::UNDEFINED)
    }

    /// The token whose string is `s` (the last one, if the vocabulary repeats a string).
    #[inline]
    pub fn find(&self, s: &[u8]) -> Option<u32> {
        self.strings
            .get(s)
            .filter(|&i| (i as usize) < self.n_tokens())
    }

    /// Read the vocabulary; `pre` is `tokenizer.ggml.pre` (empty if absent) and `no_bos_default`
    /// says the pre-tokenizer drops the default BOS (ChatGLM).
    pub fn load(g: &Gguf, kind: Kind, no_bos_default: bool) -> Result<Vocab> {
        let key = "tokenizer.ggml.tokens";
        let tokens = g
            .get_str_array(key)
            .context("the model has no vocabulary")?;
        let n = tokens.len();
        if n == 0 || n >= u32::MAX as usize / 2 {
            bail!("{key} has {n} entries");
        }
        let info = g.get_array(key)?;
        let mut strings = StrTable::with_capacity(n, info.byte_len);
        let mut empty_names = Vec::new();
        for (i, t) in g.get_str_array(key)?.enumerate() {
            if t.is_empty() {
                empty_names.push((i, format!("[EMPTY_{i}]")));
            }
        }
        let mut empty = empty_names.iter().peekable();
        strings.extend_bulk(tokens.enumerate().map(|(i, t)| match empty.peek() {
            Some((j, name)) if *j == i => {
                empty.next();
                name.as_bytes()
            }
            _ => t,
        }));

        let key = "tokenizer.ggml.scores";
        let scores = if g.contains_key(key) {
            let a = g.get_array(key)?;
            let s: Vec<f32> = match a.elem {
                ValueType::F32 => g.get_f32_array(key)?,
                ValueType::I32 => g
                    .get_int_array(key)?
                    .into_iter()
                    .map(|v| v as f32)
                    .collect(),
                other => bail!("{key} is an array of {other}, expected f32 or i32"),
            };
            if s.len() < n {
                bail!("{key} has {} entries for {n} tokens", s.len());
            }
            let mut s = s;
            s.truncate(n);
            s
        } else {
            vec![0.0; n]
        };

        let attrs: Vec<u16> = match opt_int_array(g, "tokenizer.ggml.token_type", n)? {
            Some(types) => types[..n].iter().map(|&t| attr_of_type(t)).collect(),
            None => vec![attr::NORMAL; n],
        };

        let mut v = Vocab {
            kind,
            strings,
            scores,
            attrs,
            specials: Specials::default(),
            eog: Vec::new(),
        };
        v.find_specials(g, no_bos_default);
        v.derive_attributes(g);
        Ok(v)
    }

    fn find_specials(&mut self, g: &Gguf, no_bos_default: bool) {
        let n = self.n_tokens() as u32;
        let mut s = match self.kind {
            Kind::Spm => Specials {
                bos: Some(1),
                eos: Some(2),
                unk: Some(0),
                ..Specials::default()
            },
            Kind::Bpe => Specials {
                bos: Some(11),
                eos: Some(11),
                ..Specials::default()
            },
        };
        if no_bos_default {
            s.bos = None;
        }
        // A default outside the vocabulary is dropped; a bad id in the file keeps the default.
        let apply = |slot: &mut Option<u32>, key: &str| {
            if slot.is_some_and(|id| id >= n) {
                *slot = None;
            }
            if let Some(id) = opt_id(g, key).filter(|&id| id < n) {
                *slot = Some(id);
            }
        };
        apply(&mut s.bos, "tokenizer.ggml.bos_token_id");
        apply(&mut s.eos, "tokenizer.ggml.eos_token_id");
        apply(&mut s.eot, "tokenizer.ggml.eot_token_id");
        apply(&mut s.eom, "tokenizer.ggml.eom_token_id");
        apply(&mut s.unk, "tokenizer.ggml.unknown_token_id");
        apply(&mut s.sep, "tokenizer.ggml.seperator_token_id");
        apply(&mut s.pad, "tokenizer.ggml.padding_token_id");
        apply(&mut s.mask, "tokenizer.ggml.mask_token_id");
        apply(&mut s.fim_pre, "tokenizer.ggml.fim_pre_token_id");
        apply(&mut s.fim_suf, "tokenizer.ggml.fim_suf_token_id");
        apply(&mut s.fim_mid, "tokenizer.ggml.fim_mid_token_id");
        apply(&mut s.fim_pad, "tokenizer.ggml.fim_pad_token_id");
        apply(&mut s.fim_rep, "tokenizer.ggml.fim_rep_token_id");
        apply(&mut s.fim_sep, "tokenizer.ggml.fim_sep_token_id");
        // Older names for the FIM tokens.
        apply(&mut s.fim_pre, "tokenizer.ggml.prefix_token_id");
        apply(&mut s.fim_suf, "tokenizer.ggml.suffix_token_id");
        apply(&mut s.fim_mid, "tokenizer.ggml.middle_token_id");
        self.specials = s;
    }

    /// What llama.cpp infers from token names after loading: EOT/EOM/FIM tokens, "unused"
    /// tokens, the end-of-generation set and a few per-model fixes.
    fn derive_attributes(&mut self, g: &Gguf) {
        use attr::*;
        let n = self.n_tokens() as u32;
        let ids_named = |v: &Vocab, names: &[&str]| -> Vec<u32> {
            names
                .iter()
                .filter_map(|nm| v.find(nm.as_bytes()))
                .collect::<std::collections::BTreeSet<u32>>()
                .into_iter()
                .collect()
        };
        let force_control = |v: &mut Vocab, id: u32| v.attrs[id as usize] |= CONTROL;

        // EOT, EOM and FIM tokens the metadata does not name are found by their strings. Each
        // one picked is made a control token.
        let strings = &self.strings;
        let lowest = |names: &[&str]| {
            names
                .iter()
                .filter_map(|nm| strings.get(nm.as_bytes()))
                .filter(|&id| id < n)
                .min()
        };
        let sp = &mut self.specials;
        let mut picked = Vec::new();
        for (slot, names) in [
            (&mut sp.eot, EOT_NAMES),
            (&mut sp.eom, &["<|eom_id|>"][..]),
            (&mut sp.fim_pre, FIM_PRE_NAMES),
            (&mut sp.fim_suf, FIM_SUF_NAMES),
            (&mut sp.fim_mid, FIM_MID_NAMES),
            (&mut sp.fim_pad, FIM_PAD_NAMES),
            (&mut sp.fim_rep, FIM_REP_NAMES),
            (&mut sp.fim_sep, &["<|file_sep|>"][..]),
        ] {
            if slot.is_none() {
                *slot = lowest(names);
                picked.extend(*slot);
            }
        }
        for id in picked {
            force_control(self, id);
        }

        // Control tokens named "unused" are unused.
        for id in 0..n {
            let a = self.attrs[id as usize];
            if a & CONTROL != 0 && a & UNUSED == 0 && contains(self.strings.get_str(id), b"unused")
            {
                self.attrs[id as usize] |= UNUSED;
            }
        }

        // End of generation: FIM pad/repo/sep, tokens with these names, then EOS/EOT/EOM.
        let mut eog = std::collections::BTreeSet::new();
        let s = self.specials;
        eog.extend([s.fim_pad, s.fim_rep, s.fim_sep].into_iter().flatten());
        for id in ids_named(self, EOG_NAMES) {
            eog.insert(id);
            force_control(self, id);
        }
        // gpt-oss: these are always rendered.
        for id in ids_named(
            self,
            &["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"],
        ) {
            self.attrs[id as usize] = USER_DEFINED;
        }
        eog.extend([s.eos, s.eot, s.eom].into_iter().flatten());

        // o200k_harmony / solar-open: "<|end|>" ends a message, not the generation.
        let text_in = |v: &Vocab, eog: &std::collections::BTreeSet<u32>, t: &str| {
            eog.iter().any(|&id| v.strings.get_str(id) == t.as_bytes())
        };
        let has_call = text_in(self, &eog, "<|call|>") || text_in(self, &eog, "<|calls|>");
        let has = |t: &str| text_in(self, &eog, t);
        if has_call && (has("<|return|>") || has("<|flush|>")) && has("<|end|>") {
            if let Some(&end) = eog
                .iter()
                .find(|&&id| self.strings.get_str(id) == b"<|end|>")
            {
                eog.remove(&end);
                self.attrs[end as usize] = USER_DEFINED;
            }
        }
        // Gemma 4 and PLaMo have a normal "</s>".
        if text_in(self, &eog, "<|tool_response>") || text_in(self, &eog, "<|plamo:eos|>") {
            if let Some(&s_id) = eog.iter().find(|&&id| self.strings.get_str(id) == b"</s>") {
                eog.remove(&s_id);
                self.attrs[s_id as usize] = NORMAL;
            }
        }
        self.eog = eog.into_iter().collect();

        // Per-model strip attributes (llama.cpp sets these by model name).
        let lower = |k: &str| g.opt_str(k).ok().flatten().unwrap_or("").to_lowercase();
        let (name, pre, arch) = (
            lower("general.name"),
            lower("tokenizer.ggml.pre"),
            lower("general.architecture"),
        );
        let any = |s: &str, subs: &[&str]| subs.iter().any(|x| s.contains(x));
        let set = |v: &mut Vocab, text: &str, bit: u16, on: bool| {
            if let Some(id) = v.find(text.as_bytes()) {
                let a = &mut v.attrs[id as usize];
                *a = if on { *a | bit } else { *a & !bit };
            }
        };
        if any(&pre, &["jina-v2-de", "jina-v2-es", "jina-v2-code"])
            || any(&arch, &["nomic-bert-moe", "jina-bert-v3"])
        {
            set(self, "<mask>", LSTRIP, true);
        } else if any(&name, &["phi-3", "phi3"]) {
            for id in 0..n as usize {
                if self.attrs[id] & (CONTROL | USER_DEFINED | UNKNOWN) != 0 {
                    self.attrs[id] |= RSTRIP;
                }
            }
            set(self, "</s>", RSTRIP, true);
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                set(self, t, RSTRIP, false);
            }
        } else if any(&name, &["modern-bert"]) {
            set(self, "[MASK]", LSTRIP, true);
        }
    }
}

// Token strings llama.cpp recognises. Where several tokens of a vocabulary match one list,
// llama.cpp's pick depends on hash-map order; nib takes the lowest id.
const EOT_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const FIM_PRE_NAMES: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_NAMES: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_NAMES: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_NAMES: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_NAMES: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
/// Tokens that end generation, by string (besides EOS, EOT, EOM and the FIM pad/repo/sep tokens).
const EOG_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find_bytes(hay, needle, 0).is_some()
}

/// The first occurrence of `needle` in `hay` at or after `from`.
pub fn find_bytes(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let Some((&first, rest)) = needle.split_first() else {
        return (from <= hay.len()).then_some(from);
    };
    let mut i = from;
    while i + needle.len() <= hay.len() {
        match hay[i..hay.len() - rest.len()]
            .iter()
            .position(|&b| b == first)
        {
            None => return None,
            Some(p) => {
                i += p;
                if &hay[i + 1..i + needle.len()] == rest {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}
