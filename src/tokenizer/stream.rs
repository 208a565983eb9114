//! Streaming detokenization: text for each new token as soon as it is whole UTF-8.

use super::Tokenizer;

/// Turns token ids into text one at a time. A token can end inside a UTF-8 sequence (byte
/// tokens, byte-level BPE pieces of an emoji); those bytes are held back until the sequence is
/// complete, so every string returned is valid and the concatenation equals
/// `String::from_utf8_lossy` of all pieces.
///
/// ```no_run
/// # let g = nib::gguf::Gguf::open("m.gguf")?;
/// # let tok = nib::tokenizer::Tokenizer::from_gguf(&g)?;
/// let mut dec = nib::tokenizer::StreamDecoder::new();
/// let mut text = String::new();
/// for id in tok.tokenize("Emoji: 🙂", false, false) {
///     text += &dec.push(&tok, id);
/// }
/// text += &dec.finish();
/// # anyhow::Ok(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    skip_special: bool,
}

impl StreamDecoder {
    /// A decoder that renders control tokens as their text (like [`Tokenizer::detokenize`]).
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// A decoder that renders control and unknown tokens as nothing.
    pub fn skipping_special() -> StreamDecoder {
        StreamDecoder {
            skip_special: true,
            ..StreamDecoder::default()
        }
    }

    /// Add a token; returns the text that is now complete (often all of the token, sometimes
    /// nothing).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        self.pending
            .extend_from_slice(tok.token_to_piece_special(id, !self.skip_special));
        self.take(false)
    }

    /// Bytes held back, if any.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// The end of the stream: whatever is held back, incomplete sequences as U+FFFD.
    pub fn finish(&mut self) -> String {
        self.take(true)
    }

    fn take(&mut self, all: bool) -> String {
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(good).unwrap());
                    match e.error_len() {
                        // Invalid bytes will never become valid: replace them now.
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &bad[n..];
                        }
                        // A sequence cut short at the end: wait for more, unless this is the end.
                        None => {
                            if all {
                                out.push(char::REPLACEMENT_CHARACTER);
                                rest = &[];
                            } else {
                                rest = bad;
                            }
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        let n = self.pending.len();
        self.pending.drain(..n - keep);
        out
    }
}
