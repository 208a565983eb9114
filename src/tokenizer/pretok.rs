//! Pre-tokenizers for byte-level BPE: the text is cut into words before merging, by a list of
//! regex-like stages chosen by `tokenizer.ggml.pre`.
//!
//! Each stage cuts every piece left by the stage before it: a match becomes a piece, and so does
//! each stretch between matches (as llama.cpp's `unicode_regex_split`). The GPT-2 and LLaMA-3 /
//! Qwen2 patterns need look-ahead, so they are hand-written state machines; the other patterns
//! are simple enough (`X+`, `\s?X+`, `\s+$`, one `X`, `[0-9]{3}`) for one small matcher.
//! Positions are code point indices; `flags[i]` describes `cpts[i]`.

use super::unicode::{is_whitespace, Flags};

/// A set of code points: a test on the code point and its flags.
pub type CharClass = fn(u32, Flags) -> bool;

/// A simple pattern, matched leftmost-first and greedy like ECMAScript regexes.
#[derive(Clone, Copy, Debug)]
pub enum Pattern {
    /// `X+`
    Run(CharClass),
    /// `X` (one code point)
    One(CharClass),
    /// `\s?X+`
    SpaceRun(CharClass),
    /// `\s+$` (whitespace that runs to the end of the piece)
    TrailingSpace,
    /// `[0-9][0-9][0-9]`
    ThreeDigits,
}

/// One stage of a pre-tokenizer.
#[derive(Clone, Copy, Debug)]
pub enum Stage {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    Gpt2,
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,K}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// with K = 3 (LLaMA 3) or 1 (Qwen2).
    Llama3 { max_digits: usize },
    /// A simple pattern.
    Simple(Pattern),
}

/// Which pre-tokenizer, by `tokenizer.ggml.pre`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreKind {
    Default,
    Gpt2,
    Llama3,
    Qwen2,
    /// StarCoder, SmolLM, Refact, Command-R, CodeShell, EXAONE, Minerva, Mellum2: digits one by one,
    /// then GPT-2.
    Starcoder,
    Falcon,
    DeepseekLlm,
    DeepseekCoder,
}

/// What a `tokenizer.ggml.pre` value asks for besides the split.
#[derive(Clone, Copy, Debug)]
pub struct PreInfo {
    pub kind: PreKind,
    /// Detokenizing tidies spaces before punctuation (`clean_up_tokenization_spaces`).
    pub clean_spaces: bool,
    /// A word that is a whole vocabulary entry is emitted without merging.
    pub ignore_merges: bool,
    /// The model adds BOS unless the metadata says otherwise.
    pub add_bos: bool,
    /// The model has no BOS unless the metadata names one.
    pub no_bos: bool,
}

impl PreInfo {
    /// The pre-tokenizer for `tokenizer.ggml.pre` (an empty name is the default one), as
    /// llama.cpp's vocabulary loader maps the names; `None` for the ones nib does not implement.
    pub fn from_name(name: &str) -> Option<PreInfo> {
        let info = |kind, clean_spaces| PreInfo {
            kind,
            clean_spaces,
            ignore_merges: false,
            add_bos: false,
            no_bos: false,
        };
        Some(match name {
            "" | "default" => info(PreKind::Default, true),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => PreInfo {
                ignore_merges: true,
                add_bos: true,
                ..info(PreKind::Llama3, true)
            },
            "dbrx" | "smaug-bpe" => info(PreKind::Llama3, true),
            "chatglm-bpe" => PreInfo {
                no_bos: true,
                ..info(PreKind::Llama3, true)
            },
            "glm4" | "glm5" => PreInfo {
                no_bos: true,
                ignore_merges: true,
                ..info(PreKind::Llama3, true)
            },
            "deepseek-llm" => info(PreKind::DeepseekLlm, false),
            "deepseek-coder" => info(PreKind::DeepseekCoder, false),
            "falcon" => info(PreKind::Falcon, true),
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en"
            | "jina-v2-code" | "roberta-bpe" | "mpt" | "olmo" | "jais" | "exaone4" => {
                info(PreKind::Gpt2, true)
            }
            "trillion" | "granite-docling" => info(PreKind::Gpt2, false),
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open"
            | "grok-2" => info(PreKind::Qwen2, false),
            "stablelm2" | "megrez" => info(PreKind::Qwen2, true),
            "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
                info(PreKind::Starcoder, true)
            }
            "smollm" | "command-r" => info(PreKind::Starcoder, false),
            _ => return None,
        })
    }
}

fn is_number(_: u32, f: Flags) -> bool {
    f.number()
}
fn is_letter(_: u32, f: Flags) -> bool {
    f.letter()
}
fn is_punct(_: u32, f: Flags) -> bool {
    f.punct()
}
fn is_cr_lf(c: u32, _: Flags) -> bool {
    c == '\r' as u32 || c == '\n' as u32
}
/// `[\p{P}\$\+<=>\^~\|]`
fn is_punct_default(c: u32, f: Flags) -> bool {
    f.punct()
        || matches!(
            char::from_u32(c),
            Some('$' | '+' | '<' | '=' | '>' | '^' | '~' | '|')
        )
}
/// `[\p{P}\$\+<=>\^~\|`]`
fn is_punct_falcon(c: u32, f: Flags) -> bool {
    is_punct_default(c, f) || c == '`' as u32
}

/// What an ECMAScript `std::wregex` class sees: llama.cpp replaces non-ASCII whitespace with
/// U+000B before matching, so such code points never match a literal range.
fn wregex_char(c: u32) -> u32 {
    if c > 0x7F && is_whitespace(c) {
        0x0B
    } else {
        c
    }
}

fn in_ranges(c: u32, ranges: &[(u32, u32)]) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

/// DeepSeek LLM's letter class (from its tokenizer.json).
fn is_deepseek_letter(c: u32, _: Flags) -> bool {
    const R: &[(u32, u32)] = &[
        (0x41, 0x5A),
        (0x61, 0x7A),
        (0xB5, 0xB5),
        (0xC0, 0xD6),
        (0xD8, 0xF6),
        (0xF8, 0x1BA),
        (0x1BC, 0x1BF),
        (0x1C4, 0x293),
        (0x295, 0x2AF),
        (0x370, 0x373),
        (0x376, 0x377),
        (0x37B, 0x37D),
        (0x37F, 0x37F),
        (0x386, 0x386),
        (0x388, 0x38A),
        (0x38C, 0x38C),
        (0x38E, 0x3A1),
        (0x3A3, 0x3F5),
        (0x3F7, 0x481),
        (0x48A, 0x52F),
        (0x531, 0x556),
        (0x10A0, 0x10C5),
        (0x13A0, 0x13F5),
        (0x13F8, 0x13FD),
        (0x1C90, 0x1CBA),
        (0x1CBD, 0x1CBF),
        (0x1D00, 0x1D2B),
        (0x1D6B, 0x1D77),
        (0x1D79, 0x1D9A),
        (0x1E00, 0x1F15),
        (0x1F18, 0x1F1D),
        (0x1F20, 0x1F45),
        (0x1F48, 0x1F4D),
        (0x1F50, 0x1F57),
        (0x1F59, 0x1F59),
        (0x1F5B, 0x1F5B),
        (0x1F5D, 0x1F5D),
        (0x1F5F, 0x1F7D),
        (0x1F80, 0x1FB4),
        (0x1FB6, 0x1FBC),
        (0x1FBE, 0x1FBE),
        (0x1FC2, 0x1FC4),
        (0x1FC6, 0x1FCC),
        (0x1FD0, 0x1FD3),
        (0x1FD6, 0x1FDB),
        (0x1FE0, 0x1FEC),
        (0x1FF2, 0x1FF4),
        (0x1FF6, 0x1FFC),
        (0x2102, 0x2102),
        (0x2107, 0x2107),
        (0x210A, 0x2113),
        (0x2115, 0x2115),
        (0x2119, 0x211D),
        (0x2124, 0x2124),
        (0x2126, 0x2126),
        (0x2128, 0x2128),
        (0x212A, 0x212D),
        (0x212F, 0x2134),
        (0x2139, 0x2139),
        (0x213C, 0x213F),
        (0x2145, 0x2149),
        (0x214E, 0x214E),
        (0x2183, 0x2184),
        (0x2C00, 0x2C7B),
        (0x2C7E, 0x2CE4),
        (0x2CEB, 0x2CEE),
        (0x2CF2, 0x2CF3),
        (0xA640, 0xA66D),
        (0xA680, 0xA69B),
        (0xA722, 0xA76F),
        (0xA771, 0xA787),
        (0xA78B, 0xA78E),
        (0xAB70, 0xABBF),
        (0xFB00, 0xFB06),
        (0xFB13, 0xFB17),
        (0xFF21, 0xFF3A),
        (0xFF41, 0xFF5A),
        (0x10400, 0x1044F),
        (0x104B0, 0x104D3),
        (0x104D8, 0x104FB),
        (0x10C80, 0x10CB2),
        (0x10CC0, 0x10CF2),
        (0x118A0, 0x118DF),
        (0x1E900, 0x1E943),
    ];
    in_ranges(wregex_char(c), R)
}

/// DeepSeek LLM's punctuation class: `[!-/:-~！-／：-～‘-‟　-。]`.
fn is_deepseek_punct(c: u32, _: Flags) -> bool {
    const R: &[(u32, u32)] = &[
        (0x21, 0x2F),
        (0x3A, 0x7E),
        (0xFF01, 0xFF0F),
        (0xFF1A, 0xFF5E),
        (0x2018, 0x201F),
        (0x3000, 0x3002),
    ];
    in_ranges(wregex_char(c), R)
}

/// DeepSeek's CJK class: `[一-龥ࠀ-一가-퟿]`.
fn is_deepseek_cjk(c: u32, _: Flags) -> bool {
    const R: &[(u32, u32)] = &[(0x4E00, 0x9FA5), (0x800, 0x4E00), (0xAC00, 0xD7FF)];
    in_ranges(wregex_char(c), R)
}

/// The stages of a pre-tokenizer.
pub fn stages(kind: PreKind) -> Vec<Stage> {
    use Pattern::*;
    use Stage::*;
    match kind {
        PreKind::Default => {
            vec![
                Simple(Run(is_punct_default)),
                Gpt2,
                Simple(Run(is_number)),
                Simple(ThreeDigits),
            ]
        }
        PreKind::Gpt2 => vec![Gpt2],
        PreKind::Llama3 => vec![Llama3 { max_digits: 3 }],
        PreKind::Qwen2 => vec![Llama3 { max_digits: 1 }],
        PreKind::Starcoder => vec![Simple(One(is_number)), Gpt2],
        PreKind::Falcon => vec![Simple(Run(is_punct_falcon)), Gpt2, Simple(ThreeDigits)],
        PreKind::DeepseekLlm => vec![
            Simple(One(is_cr_lf)),
            Simple(SpaceRun(is_deepseek_letter)),
            Simple(SpaceRun(is_deepseek_punct)),
            Simple(TrailingSpace),
            Simple(Run(is_deepseek_cjk)),
            Simple(Run(is_number)),
        ],
        PreKind::DeepseekCoder => vec![
            Simple(One(is_cr_lf)),
            Simple(SpaceRun(is_letter)),
            Simple(SpaceRun(is_punct)),
            Simple(Run(is_deepseek_cjk)),
            Simple(One(is_number)),
        ],
    }
}

/// A view of one piece: code points and flags, with "nothing" outside `[ini, end)`.
struct Piece<'a> {
    cpts: &'a [u32],
    flags: &'a [Flags],
    ini: usize,
    end: usize,
}

/// Code point value for positions outside the piece.
const NONE: u32 = u32::MAX;

impl Piece<'_> {
    #[inline]
    fn cpt(&self, i: usize) -> u32 {
        if i >= self.ini && i < self.end {
            self.cpts[i]
        } else {
            NONE
        }
    }
    #[inline]
    fn flags(&self, i: usize) -> Flags {
        if i >= self.ini && i < self.end {
            self.flags[i]
        } else {
            Flags::NONE
        }
    }
}

/// Collects the lengths of the words cut from one piece; empty words are dropped.
struct Cutter<'o> {
    prev: usize,
    out: &'o mut Vec<usize>,
}

impl Cutter<'_> {
    /// End the current word at `end`; returns its length.
    #[inline]
    fn cut(&mut self, end: usize) -> usize {
        let len = end - self.prev;
        if len > 0 {
            self.out.push(len);
        }
        self.prev = end;
        len
    }
}

/// `'s|'t|'re|'ve|'m|'ll|'d` at `pos` (case-insensitive if asked): the length matched, or 0.
#[inline]
fn contraction(p: &Piece, pos: usize, fold: bool) -> usize {
    if p.cpt(pos) != '\'' as u32 || pos + 1 >= p.end {
        return 0;
    }
    let low = |c: u32| {
        if fold && (b'A' as u32..=b'Z' as u32).contains(&c) {
            c + 32
        } else {
            c
        }
    };
    let c1 = low(p.cpt(pos + 1));
    if [b's', b't', b'm', b'd'].iter().any(|&b| c1 == b as u32) {
        return 2;
    }
    if pos + 2 < p.end {
        let c2 = low(p.cpt(pos + 2));
        let is = |a: u8, b: u8| c1 == a as u32 && c2 == b as u32;
        if is(b'r', b'e') || is(b'v', b'e') || is(b'l', b'l') {
            return 3;
        }
    }
    0
}

fn split_gpt2(p: &Piece, out: &mut Vec<usize>) {
    let mut w = Cutter { prev: p.ini, out };
    let mut pos = p.ini;
    while pos < p.end {
        let n = contraction(p, pos, false);
        if n > 0 {
            pos += w.cut(pos + n);
            continue;
        }

        // <space>?\p{L}+ | <space>?\p{N}+ | <space>?[^\s\p{L}\p{N}]+
        let run = spaced_run(p, pos, Flags::letter)
            .or_else(|| spaced_run(p, pos, Flags::number))
            .or_else(|| spaced_run(p, pos, Flags::other));
        if let Some(end) = run {
            pos = end;
            w.cut(pos);
            continue;
        }

        let mut n_ws = 0;
        while p.flags(pos + n_ws).whitespace() {
            n_ws += 1;
        }
        pos = whitespace_end(p, pos, n_ws);
        w.cut(pos);
    }
}

/// `<space>?` then one or more code points of `class`, at `pos`: where the match ends, if
/// there is one.
#[inline]
fn spaced_run(p: &Piece, pos: usize, class: impl Fn(Flags) -> bool) -> Option<usize> {
    let mut end = pos + (p.cpt(pos) == ' ' as u32) as usize;
    if !class(p.flags(end)) {
        return None;
    }
    while class(p.flags(end)) {
        end += 1;
    }
    Some(end)
}

/// Where the piece at `pos` ends when `n_ws` whitespace code points start there: `\s+(?!\S)`
/// (a run of several before more text leaves its last space to start the next word), else
/// `\s+`; with none, the code point stands alone.
#[inline]
fn whitespace_end(p: &Piece, pos: usize, n_ws: usize) -> usize {
    if n_ws > 1 && p.cpt(pos + n_ws) != NONE {
        pos + n_ws - 1
    } else if n_ws > 0 {
        pos + n_ws
    } else {
        pos + 1
    }
}

fn split_llama3(p: &Piece, max_digits: usize, out: &mut Vec<usize>) {
    let mut w = Cutter { prev: p.ini, out };
    let mut pos = p.ini;
    let is_crlf = |c: u32| c == '\r' as u32 || c == '\n' as u32;
    while pos < p.end {
        let cpt = p.cpt(pos);
        let flags = p.flags(pos);

        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        let n = contraction(p, pos, true);
        if n > 0 {
            pos += w.cut(pos + n);
            continue;
        }

        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !(is_crlf(cpt) || flags.number()) && (flags.letter() || p.flags(pos + 1).letter()) {
            pos += 1;
            while p.flags(pos).letter() {
                pos += 1;
            }
            w.cut(pos);
            continue;
        }

        // \p{N}{1,K}
        if flags.number() {
            let mut ini = pos;
            while p.flags(pos).number() {
                pos += 1;
                if pos - ini >= max_digits {
                    w.cut(pos);
                    ini = pos;
                }
            }
            w.cut(pos);
            continue;
        }

        // <space>?[^\s\p{L}\p{N}]+[\r\n]*
        if let Some(end) = spaced_run(p, pos, Flags::other) {
            pos = end;
            while is_crlf(p.cpt(pos)) {
                pos += 1;
            }
            w.cut(pos);
            continue;
        }

        let mut n_ws = 0;
        let mut last_crlf_end = 0;
        while p.flags(pos + n_ws).whitespace() {
            if is_crlf(p.cpt(pos + n_ws)) {
                last_crlf_end = pos + n_ws + 1;
            }
            n_ws += 1;
        }
        // \s*[\r\n]+
        if last_crlf_end > 0 {
            pos = last_crlf_end;
            w.cut(pos);
            continue;
        }
        pos = whitespace_end(p, pos, n_ws);
        w.cut(pos);
    }
}

/// Where the leftmost match of `pat` at or after `from` starts, and its end.
fn find_simple(p: &Piece, pat: Pattern, from: usize) -> Option<(usize, usize)> {
    let is = |c: CharClass, i: usize| i < p.end && c(p.cpts[i], p.flags[i]);
    let run_end = |c: CharClass, mut i: usize| {
        while is(c, i) {
            i += 1;
        }
        i
    };
    let ws = |i: usize| i < p.end && p.flags[i].whitespace();
    match pat {
        Pattern::Run(c) => (from..p.end)
            .find(|&i| is(c, i))
            .map(|i| (i, run_end(c, i))),
        Pattern::One(c) => (from..p.end).find(|&i| is(c, i)).map(|i| (i, i + 1)),
        Pattern::SpaceRun(c) => (from..p.end).find_map(|i| {
            if ws(i) && is(c, i + 1) {
                Some((i, run_end(c, i + 1)))
            } else if is(c, i) {
                Some((i, run_end(c, i)))
            } else {
                None
            }
        }),
        Pattern::TrailingSpace => {
            let mut start = p.end;
            while start > from && ws(start - 1) {
                start -= 1;
            }
            (start < p.end).then_some((start, p.end))
        }
        Pattern::ThreeDigits => {
            let digit = |i: usize| i < p.end && (b'0' as u32..=b'9' as u32).contains(&p.cpts[i]);
            (from..p.end)
                .find(|&i| digit(i) && digit(i + 1) && digit(i + 2))
                .map(|i| (i, i + 3))
        }
    }
}

fn split_simple(p: &Piece, pat: Pattern, out: &mut Vec<usize>) {
    let mut pos = p.ini;
    while let Some((start, end)) = find_simple(p, pat, pos) {
        if start > pos {
            out.push(start - pos);
        }
        out.push(end - start);
        pos = end;
    }
    if pos < p.end {
        out.push(p.end - pos);
    }
}

/// Cut `cpts` into words: returns the word lengths (in code points), which sum to `cpts.len()`.
/// `flags` must hold `Flags::of` for every code point; `scratch` is reused between calls.
pub fn split(
    stages: &[Stage],
    cpts: &[u32],
    flags: &[Flags],
    words: &mut Vec<usize>,
    scratch: &mut Vec<usize>,
) {
    words.clear();
    if cpts.is_empty() {
        return;
    }
    words.push(cpts.len());
    for &stage in stages {
        scratch.clear();
        let mut start = 0;
        for &len in words.iter() {
            let p = Piece {
                cpts,
                flags,
                ini: start,
                end: start + len,
            };
            match stage {
                Stage::Gpt2 => split_gpt2(&p, scratch),
                Stage::Llama3 { max_digits } => split_llama3(&p, max_digits, scratch),
                Stage::Simple(pat) => split_simple(&p, pat, scratch),
            }
            start += len;
        }
        std::mem::swap(words, scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(kind: PreKind, text: &str) -> Vec<String> {
        let cpts: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let flags: Vec<Flags> = cpts.iter().map(|&c| Flags::of(c)).collect();
        let (mut w, mut s) = (Vec::new(), Vec::new());
        split(&stages(kind), &cpts, &flags, &mut w, &mut s);
        let mut out = Vec::new();
        let mut i = 0;
        for len in w {
            out.push(
                cpts[i..i + len]
                    .iter()
                    .map(|&c| char::from_u32(c).unwrap())
                    .collect(),
            );
            i += len;
        }
        assert_eq!(i, cpts.len());
        out
    }

    #[test]
    fn gpt2() {
        let k = PreKind::Gpt2;
        assert_eq!(words(k, "Hello world"), ["Hello", " world"]);
        assert_eq!(
            words(k, "I'm can't WE'LL"),
            ["I", "'m", " can", "'t", " WE", "'", "LL"]
        );
        assert_eq!(words(k, "a   b"), ["a", "  ", " b"]);
        assert_eq!(words(k, "a   "), ["a", "   "]);
        assert_eq!(words(k, "x\n\n y"), ["x", "\n\n", " y"]);
        assert_eq!(words(k, "12345 3.14"), ["12345", " 3", ".", "14"]);
        assert_eq!(words(k, "hi!!! ?"), ["hi", "!!!", " ?"]);
        assert_eq!(words(k, "café naïve"), ["café", " naïve"]);
        assert_eq!(words(k, ""), Vec::<String>::new());
        // \p{N} is not char::is_numeric's idea only: Roman numerals are numbers, not letters
        assert_eq!(words(k, "Ⅻabc"), ["Ⅻ", "abc"]);
    }

    #[test]
    fn starcoder_digits_alone() {
        assert_eq!(
            words(PreKind::Starcoder, "abc 1234 x"),
            ["abc", " ", "1", "2", "3", "4", " x"]
        );
        assert_eq!(words(PreKind::Starcoder, "v2.0"), ["v", "2", ".", "0"]);
    }

    #[test]
    fn llama3() {
        let k = PreKind::Llama3;
        assert_eq!(words(k, "Hello world"), ["Hello", " world"]);
        assert_eq!(words(k, "1234567"), ["123", "456", "7"]);
        assert_eq!(words(k, "I'M WE'LL"), ["I", "'M", " WE", "'LL"]);
        assert_eq!(words(k, "(hello) x"), ["(hello", ")", " x"]);
        assert_eq!(words(k, "a  \n\n  b"), ["a", "  \n\n", " ", " b"]);
        assert_eq!(words(k, "end.\n\nNext"), ["end", ".\n\n", "Next"]);
        assert_eq!(words(k, "a   "), ["a", "   "]);
        assert_eq!(words(PreKind::Qwen2, "1234"), ["1", "2", "3", "4"]);
    }

    #[test]
    fn default_stages() {
        let k = PreKind::Default;
        assert_eq!(
            words(k, "a+=b 1234567"),
            ["a", "+=", "b", " ", "123", "456", "7"]
        );
    }

    #[test]
    fn deepseek() {
        assert_eq!(
            words(PreKind::DeepseekLlm, "Hello world!\n中文 12  "),
            ["Hello", " world", "!", "\n", "中文", " ", "12", "  "]
        );
        assert_eq!(
            words(PreKind::DeepseekCoder, "x = 12;\n"),
            ["x", " = ", "1", "2", ";", "\n"]
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            PreInfo::from_name("smollm").unwrap().kind,
            PreKind::Starcoder
        );
        assert!(!PreInfo::from_name("smollm").unwrap().clean_spaces);
        assert!(PreInfo::from_name("llama-bpe").unwrap().ignore_merges);
        assert!(PreInfo::from_name("no-such-thing").is_none());
    }
}
