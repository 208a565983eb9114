//! Tokenizers built from GGUF metadata, matching llama.cpp token for token.
//!
//! Two algorithms: GPT-2 byte-level BPE (`tokenizer.ggml.model = gpt2`, with the pre-tokenizer
//! named by `tokenizer.ggml.pre`) and SentencePiece BPE (`llama`). [`Tokenizer::tokenize`] works
//! like `llama_tokenize`: special-token strings are cut out first (control tokens only when
//! `parse_special`), then each stretch of text is tokenized, and BOS/EOS are added as the model
//! asks when `add_special`. [`Tokenizer::token_to_piece`] and [`Tokenizer::detokenize`] work like
//! `llama_token_to_piece` and `llama_detokenize`; [`StreamDecoder`] turns a stream of ids into
//! text without splitting UTF-8 sequences.
//!
//! Pre-tokenizers (`tokenizer.ggml.pre`): default, the GPT-2 family (gpt-2, phi-2, mpt, olmo,
//! jais, ...), the LLaMA-3 family (llama-bpe, llama3, falcon3, dbrx, smaug-bpe, chatglm-bpe, glm4,
//! ...), the Qwen2 family (qwen2, stablelm2, deepseek-r1-qwen, hunyuan, ...), the StarCoder
//! family (starcoder, smollm, refact, command-r, ...), falcon, deepseek-llm and deepseek-coder;
//! each is checked against llama.cpp (tests/tokenizer.rs). Others are refused with an error.
//! Unicode classes follow Unicode 15.1, as llama.cpp's tables do.
//!
//! ```no_run
//! let g = nib::gguf::Gguf::open("models/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let tok = nib::tokenizer::Tokenizer::from_gguf(&g)?;
//! let ids = tok.tokenize("Hello world", true, true);
//! assert_eq!(tok.detokenize(&ids), "Hello world");
//! # anyhow::Ok(())
//! ```

mod bpe;
mod pretok;
mod special;
mod spm;
mod stream;
mod table;
mod unicode;
mod unicode_tables;
mod vocab;

pub use stream::StreamDecoder;
pub use unicode_tables::UNICODE_VERSION;
pub use vocab::attr;

use crate::gguf::Gguf;
use anyhow::{bail, Result};
use pretok::PreInfo;
use special::{Fragment, SpecialMatcher};
use std::cell::RefCell;
use table::Arena;
use vocab::{Kind, Vocab};

enum Algo {
    Spm(Box<spm::Spm>),
    Bpe(Box<bpe::Bpe>),
}

/// A tokenizer for one model's vocabulary.
pub struct Tokenizer {
    vocab: Vocab,
    algo: Algo,
    specials: SpecialMatcher,
    /// `token_to_piece(id, special = true)` for every token, as llama.cpp caches it.
    pieces: Arena,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    model: String,
    pre: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("model", &self.model)
            .field("pre", &self.pre)
            .field("n_vocab", &self.n_vocab())
            .field("bos", &self.bos())
            .field("eos", &self.eos())
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .finish()
    }
}

thread_local! {
    static SCRATCH: RefCell<(bpe::Scratch, spm::Scratch, Vec<Fragment>)> = RefCell::default();
}

/// Replace each occurrence of `from` in `s` by `to`.
fn replace_all(s: &[u8], from: &[u8], to: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(j) = vocab::find_bytes(s, from, i) {
        out.extend_from_slice(&s[i..j]);
        out.extend_from_slice(to);
        i = j + from.len();
    }
    out.extend_from_slice(&s[i..]);
}

const SPACE_ESCAPE: &[u8] = "\u{2581}".as_bytes();

impl Tokenizer {
    /// Build the tokenizer that the model's metadata describes.
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
        let model = g
            .get_str("tokenizer.ggml.model")
            .map_err(|e| anyhow::anyhow!("{e} (the model has no tokenizer)"))?;
        let pre_name = g.opt_str("tokenizer.ggml.pre")?.unwrap_or("").to_string();
        let (kind, pre) = match model {
            "llama" => (Kind::Spm, None),
            "gpt2" => match PreInfo::from_name(&pre_name) {
                Some(p) => (Kind::Bpe, Some(p)),
                None => bail!("pre-tokenizer {pre_name:?} (tokenizer.ggml.pre) is not supported"),
            },
            other => bail!("tokenizer model {other:?} is not supported (nib has gpt2 and llama)"),
        };
        let vocab = Vocab::load(g, kind, pre.is_some_and(|p| p.no_bos))?;

        let (mut add_bos, mut add_eos, mut add_space_prefix, clean_spaces) = match pre {
            None => (true, false, true, false),
            Some(p) => (p.add_bos, false, false, p.clean_spaces),
        };
        if let Some(v) = g.opt_bool("tokenizer.ggml.add_space_prefix").ok().flatten() {
            add_space_prefix = v;
        }
        if let Some(v) = g.opt_bool("tokenizer.ggml.add_bos_token").ok().flatten() {
            add_bos = v;
        }
        if let Some(v) = g.opt_bool("tokenizer.ggml.add_eos_token").ok().flatten() {
            add_eos = v;
        }
        if add_bos && vocab.specials.bos.is_none() {
            bail!("the model asks for a BOS token but has none");
        }
        if add_eos && vocab.specials.eos.is_none() {
            bail!("the model asks for an EOS token but has none");
        }

        let algo = match pre {
            None => Algo::Spm(Box::new(spm::Spm::new(&vocab))),
            Some(p) => Algo::Bpe(Box::new(bpe::Bpe::load(g, &vocab, p)?)),
        };
        let specials = SpecialMatcher::new(&vocab);
        let pieces = Self::build_pieces(&vocab);
        Ok(Tokenizer {
            vocab,
            algo,
            specials,
            pieces,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
            model: model.to_string(),
            pre: pre_name,
        })
    }

    fn build_pieces(v: &Vocab) -> Arena {
        let n = v.n_tokens();
        let mut pieces = Arena::with_capacity(n, v.strings.byte_len() + n);
        let mut buf = Vec::new();
        for id in 0..n as u32 {
            buf.clear();
            let text = v.text(id);
            let a = v.attr(id);
            if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
                buf.extend_from_slice(text);
            } else if a & attr::NORMAL != 0 {
                match v.kind {
                    Kind::Spm => replace_all(text, SPACE_ESCAPE, b" ", &mut buf),
                    Kind::Bpe => decode_byte_level(text, &mut buf),
                }
            } else if a & attr::BYTE != 0 {
                buf.push(byte_of_token(text));
            }
            pieces.push(&buf);
        }
        pieces
    }

    /// Tokenize text, as `llama_tokenize(text, add_special, parse_special)`.
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        self.tokenize_bytes(text.as_bytes(), add_special, parse_special)
    }

    /// Tokenize bytes that need not be UTF-8: invalid sequences are tokenized as llama.cpp does
    /// (byte-level BPE reads each invalid byte as U+FFFD, SentencePiece falls back to byte tokens).
    pub fn tokenize_bytes(&self, text: &[u8], add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => {
                let (b, p, f) = &mut *s;
                self.tokenize_into(text, add_special, parse_special, &mut out, b, p, f)
            }
            // Re-entered on this thread (never in practice): use fresh buffers.
            Err(_) => self.tokenize_into(
                text,
                add_special,
                parse_special,
                &mut out,
                &mut Default::default(),
                &mut Default::default(),
                &mut Vec::new(),
            ),
        });
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn tokenize_into(
        &self,
        text: &[u8],
        add_special: bool,
        parse_special: bool,
        out: &mut Vec<u32>,
        bpe_sc: &mut bpe::Scratch,
        spm_sc: &mut spm::Scratch,
        frags: &mut Vec<Fragment>,
    ) {
        self.specials
            .partition(&self.vocab, text, parse_special, frags);
        if add_special && self.add_bos {
            out.extend(self.vocab.specials.bos);
        }
        match &self.algo {
            Algo::Spm(spm) => {
                let mut prev_special = true; // a space prefix goes before the first text too
                let mut buf = Vec::new();
                for f in frags.iter() {
                    match *f {
                        Fragment::Text(a, b) => {
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.extend_from_slice(SPACE_ESCAPE);
                            }
                            replace_all(&text[a..b], b" ", SPACE_ESCAPE, &mut buf);
                            spm.tokenize(&self.vocab, &buf, out, spm_sc);
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            Algo::Bpe(bpe) => {
                for f in frags.iter() {
                    match *f {
                        Fragment::Text(a, b) => bpe.tokenize(&text[a..b], out, bpe_sc),
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.vocab.specials.eos);
        }
    }

    /// The text of a token as llama.cpp renders it with `special = true`: byte tokens as their
    /// byte, `▁` as a space, GPT-2 byte characters as bytes, control tokens as their string.
    /// Empty for ids outside the vocabulary.
    pub fn token_to_piece(&self, id: u32) -> &[u8] {
        if (id as usize) < self.n_vocab() {
            self.pieces.get(id as usize)
        } else {
            &[]
        }
    }

    /// As [`token_to_piece`](Self::token_to_piece); with `special` false, control and unknown
    /// tokens render as nothing.
    pub fn token_to_piece_special(&self, id: u32, special: bool) -> &[u8] {
        if !special && self.vocab.attr(id) & (attr::UNKNOWN | attr::CONTROL) != 0 {
            return &[];
        }
        self.token_to_piece(id)
    }

    /// Text for token ids, as `llama_detokenize(remove_special = false, unparse_special = true)`
    /// (invalid UTF-8 is replaced by U+FFFD).
    pub fn detokenize(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.detokenize_bytes(ids, false, true)).into_owned()
    }

    /// Bytes for token ids, as `llama_detokenize`: `remove_special` drops a leading BOS and a
    /// trailing EOS that the model adds; `unparse_special` renders control tokens.
    pub fn detokenize_bytes(
        &self,
        ids: &[u32],
        remove_special: bool,
        unparse_special: bool,
    ) -> Vec<u8> {
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if remove_special
            && self.add_bos
            && ids
                .first()
                .is_some_and(|&t| Some(t) == self.vocab.specials.bos)
        {
            remove_space = false;
            ids = &ids[1..];
        }
        if remove_special
            && self.add_eos
            && ids
                .last()
                .is_some_and(|&t| Some(t) == self.vocab.specials.eos)
        {
            ids = &ids[..ids.len() - 1];
        }
        let mut out = Vec::new();
        for &id in ids {
            let mut p = self.token_to_piece_special(id, unparse_special);
            if remove_space {
                if let Some(rest) = p.strip_prefix(b" ") {
                    p = rest;
                }
            }
            remove_space = false;
            out.extend_from_slice(p);
        }
        if self.clean_spaces {
            clean_up_spaces(&mut out);
        }
        out
    }

    pub fn n_vocab(&self) -> usize {
        self.vocab.n_tokens()
    }

    pub fn bos(&self) -> Option<u32> {
        self.vocab.specials.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.vocab.specials.eos
    }

    /// The end-of-turn token (`tokenizer.ggml.eot_token_id`, or found by name).
    pub fn eot(&self) -> Option<u32> {
        self.vocab.specials.eot
    }

    pub fn unk(&self) -> Option<u32> {
        self.vocab.specials.unk
    }

    pub fn pad(&self) -> Option<u32> {
        self.vocab.specials.pad
    }

    pub fn sep(&self) -> Option<u32> {
        self.vocab.specials.sep
    }

    /// Whether tokenizing with `add_special` puts BOS first.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether tokenizing with `add_special` puts EOS last.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether the token ends generation (EOS, EOT and the tokens llama.cpp knows by name).
    pub fn is_eog(&self, id: u32) -> bool {
        self.vocab.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation tokens, ascending.
    pub fn eog_tokens(&self) -> &[u32] {
        &self.vocab.eog
    }

    /// The token's string in the vocabulary, as stored (`▁` for spaces, GPT-2 byte characters).
    pub fn token_text(&self, id: u32) -> &[u8] {
        self.vocab.text(id)
    }

    /// The token's attribute bits ([`attr`]), after llama.cpp's name-based fixes.
    pub fn token_attr(&self, id: u32) -> u16 {
        self.vocab.attr(id)
    }

    /// The token's score (SentencePiece merge priority; 0 where the model has none).
    pub fn token_score(&self, id: u32) -> f32 {
        self.vocab.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    /// Whether the token is a control token (rendered only with `special`).
    pub fn is_control(&self, id: u32) -> bool {
        self.vocab.attr(id) & attr::CONTROL != 0
    }

    /// The token whose vocabulary string is `text` exactly.
    pub fn find_token(&self, text: &str) -> Option<u32> {
        self.vocab.find(text.as_bytes())
    }

    /// `tokenizer.ggml.model`: "gpt2" or "llama".
    pub fn model_name(&self) -> &str {
        &self.model
    }

    /// `tokenizer.ggml.pre` (empty if absent).
    pub fn pre_name(&self) -> &str {
        &self.pre
    }
}

/// GPT-2 byte-level text to bytes, as llama.cpp's `llama_decode_text`.
fn decode_byte_level(text: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < text.len() {
        let (cp, n) = unicode::decode_lenient(text, i);
        match char::from_u32(cp).and_then(unicode::char_to_byte) {
            Some(b) => out.push(b),
            None => {
                // llama.cpp writes this marker, with the whole token text, for characters
                // outside the byte map.
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut enc = Vec::new();
                unicode::push_utf8(cp, &mut enc);
                for b in enc {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text);
                out.push(b']');
            }
        }
        i += n;
    }
}

/// The byte of a `<0xXX>` token (as llama.cpp: hex digits from the fourth byte; 0 if none).
fn byte_of_token(text: &[u8]) -> u8 {
    let digits = text.get(3..5.min(text.len())).unwrap_or(&[]);
    let mut v: u32 = 0;
    for &d in digits {
        match (d as char).to_digit(16) {
            Some(x) => v = v * 16 + x,
            None => break,
        }
    }
    v as u8
}

/// llama.cpp's `clean_up_tokenization_spaces` passes over detokenized bytes: drop the space
/// before `?!.,`, around a lone `'`, and before `'s`, `'m`, `'re`, `'ve`.
fn clean_up_spaces(t: &mut Vec<u8>) {
    // Each pass compacts in place; reads stay at or ahead of writes, as in llama.cpp.
    let n1 = t.len();
    let mut total = usize::from(n1 > 0);
    for i in 1..n1 {
        let x = t[i];
        if t[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        t[total] = x;
        total += 1;
    }
    let n2 = total;
    total = usize::from(n2 > 0);
    let mut i = 1;
    while i < n2 {
        let x = t[i];
        if x == b'\'' && i + 1 < n2 && t[i - 1] == b' ' && t[i + 1] == b' ' {
            total -= 1;
            i += 1;
            t[i] = 0; // the space after is dropped (llama.cpp overwrites it with NUL)
        }
        t[total] = x;
        total += 1;
        i += 1;
    }
    let n3 = total;
    total = usize::from(n3 > 0);
    for i in 1..n3 {
        let x = t[i];
        if t[i - 1] == b' ' && x == b'\'' && i + 1 < n3 {
            let x1 = t[i + 1];
            if x1 == b's'
                || x1 == b'm'
                || (i + 2 < n3 && matches!((x1, t[i + 2]), (b'r', b'e') | (b'v', b'e')))
            {
                total -= 1;
            }
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        clean_up_spaces(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn clean_spaces() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("it ' s"), "it's");
        assert_eq!(clean("I 'm here , you 're"), "I'm here, you're");
        assert_eq!(clean("don 't"), "don 't");
        assert_eq!(clean(""), "");
        assert_eq!(clean(" ."), ".");
    }

    #[test]
    fn byte_token() {
        assert_eq!(byte_of_token(b"<0x0A>"), 10);
        assert_eq!(byte_of_token(b"<0xff>"), 255);
        assert_eq!(byte_of_token(b"<0x"), 0);
    }

    #[test]
    fn byte_level_decode() {
        let mut v = Vec::new();
        decode_byte_level("ĠhelloĊ".as_bytes(), &mut v);
        assert_eq!(v, b" hello\n");
    }
}
