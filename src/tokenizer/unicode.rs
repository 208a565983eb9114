//! Unicode helpers for the tokenizers: general category classes (`\p{L}` and friends) and `\s`,
//! UTF-8 decoding as llama.cpp does it (lenient, invalid bytes become U+FFFD one at a time), and
//! GPT-2's byte-to-unicode map.

use super::unicode_tables::CLASS_RANGES;
use std::sync::OnceLock;

/// The general category of a code point, folded to its major class (what `\p{X}` tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Class {
    /// Cn: unassigned (and anything past U+10FFFF).
    Unassigned = 0,
    /// L: letters.
    Letter = 1,
    /// N: numbers.
    Number = 2,
    /// M: marks.
    Mark = 3,
    /// P: punctuation.
    Punctuation = 4,
    /// S: symbols.
    Symbol = 5,
    /// Z: separators.
    Separator = 6,
    /// C other than Cn: control, format, surrogate, private use.
    Other = 7,
}

impl Class {
    fn from_u8(c: u8) -> Class {
        match c {
            1 => Class::Letter,
            2 => Class::Number,
            3 => Class::Mark,
            4 => Class::Punctuation,
            5 => Class::Symbol,
            6 => Class::Separator,
            7 => Class::Other,
            _ => Class::Unassigned,
        }
    }
}

fn class_slow(cp: u32) -> Class {
    if cp >= 0x110000 {
        return Class::Unassigned;
    }
    // The last range whose start is <= cp.
    let i = CLASS_RANGES.partition_point(|&(start, _)| start <= cp);
    Class::from_u8(CLASS_RANGES[i - 1].1)
}

/// The Basic Multilingual Plane as a flat table (64 KiB), built on first use (well under a
/// millisecond); code points above it use a binary search over the ranges.
fn bmp_table() -> &'static [u8] {
    static TABLE: OnceLock<Box<[u8]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![0u8; 0x10000].into_boxed_slice();
        for (i, &(start, c)) in CLASS_RANGES.iter().enumerate() {
            if start >= 0x10000 {
                break;
            }
            let end = CLASS_RANGES
                .get(i + 1)
                .map_or(0x10000, |r| r.0.min(0x10000));
            t[start as usize..end as usize].fill(c);
        }
        t
    })
}

/// The class of a code point (Unicode 15.1, as llama.cpp's tables).
#[inline]
pub fn class(cp: u32) -> Class {
    if cp < 0x10000 {
        Class::from_u8(bmp_table()[cp as usize])
    } else {
        class_slow(cp)
    }
}

/// `\s`: the Unicode White_Space property (what llama.cpp's splitters test).
#[inline]
pub fn is_whitespace(cp: u32) -> bool {
    matches!(
        cp,
        0x09..=0x0D | 0x20 | 0x85 | 0xA0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000
    )
}

/// Per-code-point properties the splitters look at, packed for speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Flags(u8);

impl Flags {
    const LETTER: u8 = 1;
    const NUMBER: u8 = 2;
    const WHITESPACE: u8 = 4;
    const PUNCT: u8 = 8;
    const MARK: u8 = 16;
    const SYMBOL: u8 = 32;
    /// Set for every code point inside the text; clear for "past the end" (llama.cpp's
    /// out-of-range flags, which match no class at all).
    const PRESENT: u8 = 128;

    /// Flags for "no code point here" (outside the piece being split).
    pub const NONE: Flags = Flags(0);

    #[inline]
    pub fn of(cp: u32) -> Flags {
        let mut f = Self::PRESENT;
        f |= match class(cp) {
            Class::Letter => Self::LETTER,
            Class::Number => Self::NUMBER,
            Class::Punctuation => Self::PUNCT,
            Class::Mark => Self::MARK,
            Class::Symbol => Self::SYMBOL,
            _ => 0,
        };
        if is_whitespace(cp) {
            f |= Self::WHITESPACE;
        }
        Flags(f)
    }
    #[inline]
    pub fn letter(self) -> bool {
        self.0 & Self::LETTER != 0
    }
    #[inline]
    pub fn number(self) -> bool {
        self.0 & Self::NUMBER != 0
    }
    #[inline]
    pub fn whitespace(self) -> bool {
        self.0 & Self::WHITESPACE != 0
    }
    #[inline]
    pub fn punct(self) -> bool {
        self.0 & Self::PUNCT != 0
    }
    /// `[^\s\p{L}\p{N}]`, and a code point is there at all.
    #[inline]
    pub fn other(self) -> bool {
        self.0 & (Self::PRESENT | Self::LETTER | Self::NUMBER | Self::WHITESPACE) == Self::PRESENT
    }
}

/// The replacement character, which stands for every byte that does not start a valid sequence.
pub const REPLACEMENT: u32 = 0xFFFD;

/// Decode one code point at `bytes[i..]` the way llama.cpp does: the lead byte says the length and
/// the continuation bytes must be 10xxxxxx, but overlong forms and surrogates are accepted. Returns
/// the code point and the bytes used; an invalid lead or sequence gives U+FFFD for one byte.
#[inline]
pub fn decode_lenient(bytes: &[u8], i: usize) -> (u32, usize) {
    let b0 = bytes[i] as u32;
    if b0 < 0x80 {
        return (b0, 1);
    }
    let cont = |k: usize| bytes.get(i + k).is_some_and(|&b| b & 0xC0 == 0x80);
    let c = |k: usize| (bytes[i + k] & 0x3F) as u32;
    if b0 & 0x40 == 0 {
        (REPLACEMENT, 1)
    } else if b0 & 0x20 == 0 {
        if cont(1) {
            (((b0 & 0x1F) << 6) | c(1), 2)
        } else {
            (REPLACEMENT, 1)
        }
    } else if b0 & 0x10 == 0 {
        if cont(1) && cont(2) {
            (((b0 & 0x0F) << 12) | (c(1) << 6) | c(2), 3)
        } else {
            (REPLACEMENT, 1)
        }
    } else if b0 & 0x08 == 0 {
        if cont(1) && cont(2) && cont(3) {
            let cp = ((b0 & 0x07) << 18) | (c(1) << 12) | (c(2) << 6) | c(3);
            // Past U+10FFFF there is no UTF-8 encoding to re-encode to: treat it as invalid.
            if cp > 0x10FFFF {
                (REPLACEMENT, 1)
            } else {
                (cp, 4)
            }
        } else {
            (REPLACEMENT, 1)
        }
    } else {
        (REPLACEMENT, 1)
    }
}

/// All code points of `bytes`, decoded leniently.
pub fn decode_all(bytes: &[u8], out: &mut Vec<u32>) {
    out.clear();
    out.reserve(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let (cp, n) = decode_lenient(bytes, i);
        out.push(cp);
        i += n;
    }
}

/// Append the UTF-8 encoding of `cp` (any value up to U+10FFFF, surrogates included) to `out`.
#[inline]
pub fn push_utf8(cp: u32, out: &mut Vec<u8>) {
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]);
    } else if cp < 0x10000 {
        out.extend_from_slice(&[
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            0xF0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    }
}

/// The length of the UTF-8 sequence that a lead byte announces (1 for continuation bytes), as
/// llama.cpp's `unicode_len_utf8`.
#[inline]
pub fn utf8_len(lead: u8) -> usize {
    match lead >> 4 {
        0xC | 0xD => 2,
        0xE => 3,
        0xF => 4,
        _ => 1,
    }
}

/// GPT-2's byte-to-unicode map: printable Latin-1 bytes stand for themselves, the other 68 bytes
/// for U+0100.. in byte order.
pub fn byte_to_char(b: u8) -> char {
    static MAP: OnceLock<[char; 256]> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut map = ['\0'; 256];
        let mut n = 0u32;
        for b in 0..=255u8 {
            let printable = matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
            map[b as usize] = if printable {
                b as char
            } else {
                n += 1;
                char::from_u32(0xFF + n).unwrap()
            };
        }
        map
    })[b as usize]
}

/// The inverse of [`byte_to_char`].
pub fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    match cp {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => Some(cp as u8),
        0x100..=0x143 => {
            // The n-th unprintable byte (n from 0), in byte order.
            let n = (cp - 0x100) as usize;
            (0..=255u8)
                .filter(|b| !matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF))
                .nth(n)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(class('a' as u32), Class::Letter);
        assert_eq!(class('Z' as u32), Class::Letter);
        assert_eq!(class('7' as u32), Class::Number);
        assert_eq!(class('²' as u32), Class::Number);
        assert_eq!(class('Ⅻ' as u32), Class::Number);
        assert_eq!(class('!' as u32), Class::Punctuation);
        assert_eq!(class('_' as u32), Class::Punctuation);
        assert_eq!(class('$' as u32), Class::Symbol);
        assert_eq!(class('`' as u32), Class::Symbol);
        assert_eq!(class('€' as u32), Class::Symbol);
        assert_eq!(class(' ' as u32), Class::Separator);
        assert_eq!(class('\n' as u32), Class::Other);
        assert_eq!(class(0x0301), Class::Mark);
        assert_eq!(class('日' as u32), Class::Letter);
        assert_eq!(class('한' as u32), Class::Letter);
        assert_eq!(class(0x1F642), Class::Symbol); // 🙂
        assert_eq!(class(0x1F3FD), Class::Symbol); // skin tone modifier
        assert_eq!(class(0x200D), Class::Other); // ZWJ (Cf)
        assert_eq!(class(0xE000), Class::Other); // private use
        assert_eq!(class(0xD800), Class::Other); // surrogate
        assert_eq!(class(0x0378), Class::Unassigned);
        assert_eq!(class(0x2EBF0), Class::Letter); // CJK extension I (Unicode 15.1)
        assert_eq!(class(0xA7CB), Class::Unassigned); // assigned only in Unicode 16
        assert_eq!(class(0x10FFFF), Class::Unassigned);
        assert_eq!(class(0x110000), Class::Unassigned);
        // Where char::is_alphabetic disagrees with \p{L}: Roman numerals are Nl, circled letters So.
        assert!('Ⅻ'.is_alphabetic());
        assert!('ⓐ'.is_alphabetic());
        assert_eq!(class('ⓐ' as u32), Class::Symbol);
    }

    #[test]
    fn table_matches_search() {
        for cp in (0..0x10000).step_by(7) {
            assert_eq!(class(cp), class_slow(cp), "U+{cp:04X}");
        }
    }

    #[test]
    fn whitespace() {
        for c in [
            '\t', '\n', '\x0b', '\x0c', '\r', ' ', '\u{85}', '\u{a0}', '\u{2009}', '\u{3000}',
        ] {
            assert!(is_whitespace(c as u32), "{c:?}");
        }
        for c in ['a', '\u{1c}', '\u{200b}', '\u{180e}', '\0'] {
            assert!(!is_whitespace(c as u32), "{c:?}");
        }
    }

    #[test]
    fn lenient_decoding() {
        let d = |b: &[u8]| {
            let mut v = Vec::new();
            decode_all(b, &mut v);
            v
        };
        assert_eq!(d("aé日🙂".as_bytes()), vec![0x61, 0xE9, 0x65E5, 0x1F642]);
        assert_eq!(d(b"\xff"), vec![REPLACEMENT]);
        assert_eq!(d(b"\x80a"), vec![REPLACEMENT, 0x61]);
        assert_eq!(d(b"\xe6\x97"), vec![REPLACEMENT, REPLACEMENT]);
        assert_eq!(d(b"\xe6\x97a"), vec![REPLACEMENT, REPLACEMENT, 0x61]);
        assert_eq!(d(b"\xc0\x80"), vec![0]); // overlong, accepted
        assert_eq!(d(b"\xed\xa0\x80"), vec![0xD800]); // surrogate, accepted
        assert_eq!(d(b"\xf4\x90\x80\x80"), vec![REPLACEMENT; 4]);
    }

    #[test]
    fn byte_map_round_trip() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0x7F), 'ġ');
        assert_eq!(byte_to_char(0xAD), 'Ń');
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(char_to_byte('▁'), None);
        assert_eq!(char_to_byte(' '), None);
    }
}
