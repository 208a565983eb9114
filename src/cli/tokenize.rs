//! `nib tokenize -m MODEL.gguf -p TEXT`: the model's tokens for a text, like llama.cpp's
//! `llama-tokenize` (one line per token, `id -> 'piece'`; `--ids` for a JSON array of ids).

use super::common::utf8_text;
use crate::gguf::Gguf;
use crate::tokenizer::Tokenizer;
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What to tokenize and how to print it.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct Options {
    /// The GGUF file.
    #[arg(short, long)]
    pub model: PathBuf,
    /// The text (escapes such as \n are processed unless --no-escape).
    #[arg(short, long, conflicts_with_all = ["file", "stdin"])]
    pub prompt: Option<String>,
    /// Read the text from a file.
    #[arg(short, long, conflicts_with = "stdin")]
    pub file: Option<PathBuf>,
    /// Read the text from standard input.
    #[arg(long)]
    pub stdin: bool,
    /// Print only the ids, as a JSON array.
    #[arg(long)]
    pub ids: bool,
    /// Do not add BOS (or EOS) even if the model asks for it.
    #[arg(long)]
    pub no_bos: bool,
    /// Parse control tokens such as <|im_start|> in the text as single tokens (llama-tokenize
    /// now does this by default; nib does it when asked).
    #[arg(long)]
    pub parse_special: bool,
    /// Take the text as it is, without processing escapes.
    #[arg(long)]
    pub no_escape: bool,
    /// Also print the number of tokens.
    #[arg(long)]
    pub show_count: bool,
}

/// Process `\n`, `\r`, `\t`, `\'`, `\"`, `\\` and `\xHH` as llama.cpp's `string_process_escapes`
/// (other backslashes stay as they are).
pub fn process_escapes(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'\\' && i + 1 < input.len() {
            i += 1;
            let c = input[i];
            match c {
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'\'' | b'"' | b'\\' => out.push(c),
                _ => {
                    if c == b'x' && i + 2 < input.len() {
                        if let Some(v) = strtol_hex2(input[i + 1], input[i + 2]) {
                            out.push(v);
                            i += 3;
                            continue;
                        }
                    }
                    out.push(b'\\');
                    out.push(c);
                }
            }
        } else {
            out.push(input[i]);
        }
        i += 1;
    }
    out
}

/// The two bytes after `\x` as C's `strtol(.., 16)` reads them, if it reads both: two hex
/// digits, or a space or sign and one digit. The value is cast to a byte, as llama.cpp does.
fn strtol_hex2(a: u8, b: u8) -> Option<u8> {
    let hex = |x: u8| (x as char).to_digit(16);
    match (a, hex(a), hex(b)) {
        (_, Some(h), Some(l)) => Some((h * 16 + l) as u8),
        (b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b'+', None, Some(l)) => Some(l as u8),
        (b'-', None, Some(l)) => Some((l as u8).wrapping_neg()),
        _ => None,
    }
}

/// The text to tokenize: from a file or standard input it must be UTF-8 (as everywhere nib
/// reads text, [`utf8_text`]); escapes such as `\xff` may then make any bytes on purpose.
fn read_input(o: &Options) -> Result<Vec<u8>> {
    let raw = if o.stdin {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        utf8_text(buf, "standard input")?.into_bytes()
    } else if let Some(f) = &o.file {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        utf8_text(bytes, &f.display().to_string())?.into_bytes()
    } else if let Some(p) = &o.prompt {
        p.as_bytes().to_vec()
    } else {
        bail!("give the text with -p TEXT, -f FILE or --stdin");
    };
    Ok(if o.no_escape {
        raw
    } else {
        process_escapes(&raw)
    })
}

/// Load the tokenizer of a GGUF file.
pub fn load(model: &Path) -> Result<Tokenizer> {
    let g = Gguf::open(model).with_context(|| format!("opening {}", model.display()))?;
    Tokenizer::from_gguf(&g)
        .with_context(|| format!("reading the tokenizer of {}", model.display()))
}

/// Write the listing for `ids` to `w`.
pub fn write_tokens(
    tok: &Tokenizer,
    ids: &[u32],
    as_ids: bool,
    show_count: bool,
    w: &mut impl Write,
) -> Result<()> {
    if as_ids {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        writeln!(w, "[{}]", list.join(", "))?;
    } else {
        for &id in ids {
            write!(w, "{id:6} -> '")?;
            w.write_all(tok.token_to_piece(id))?;
            writeln!(w, "'")?;
        }
    }
    if show_count {
        writeln!(w, "Total number of tokens: {}", ids.len())?;
    }
    Ok(())
}

pub fn run(o: &Options) -> Result<()> {
    let text = read_input(o)?;
    let tok = load(&o.model)?;
    // As llama-tokenize: special tokens are added only if the model adds BOS and --no-bos is off.
    let add_special = tok.add_bos() && !o.no_bos;
    let ids = tok.tokenize_bytes(&text, add_special, o.parse_special);
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    write_tokens(&tok, &ids, o.ids, o.show_count, &mut w)?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::process_escapes;

    #[test]
    fn escapes() {
        assert_eq!(process_escapes(br"a\nb\tc\\d\'\x41z"), b"a\nb\tc\\d'Az");
        assert_eq!(process_escapes(br"\q"), br"\q");
        assert_eq!(process_escapes(br"\x41"), b"A");
        assert_eq!(process_escapes(br"\x4"), br"\x4"); // two bytes needed
        assert_eq!(process_escapes(br"\x-1\x 9\x+a"), b"\xff\x09\x0a"); // as strtol reads them
        assert_eq!(process_escapes(br"\xZZ!"), br"\xZZ!");
        assert_eq!(process_escapes(br"end\"), br"end\");
    }
}
