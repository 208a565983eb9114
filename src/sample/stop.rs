//! Stop strings over streamed text.
//!
//! Generation produces text a token at a time, and a stop string may arrive split over several
//! pieces (`"<|im"`, `"_end|>"`). [`StopMatcher`] emits text as soon as it cannot be part of a
//! stop string, holds back a tail that could still become one, and cuts the stop string and
//! everything after it when one completes.

/// What one [`StopMatcher::push`] lets through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StopStep {
    /// Text safe to show now.
    pub text: String,
    /// The stop string that just completed (generation should end); `None` otherwise.
    pub stop: Option<String>,
}

/// Matches stop strings across streamed pieces. See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not yet emitted: a suffix that may be the start of a stop string.
    pending: String,
    /// Index in `stops` of the stop string that ended the stream.
    hit: Option<usize>,
}

impl StopMatcher {
    /// A matcher for the given stop strings (empty ones are ignored).
    pub fn new<I, S>(stops: I) -> StopMatcher
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let stops = stops
            .into_iter()
            .map(Into::into)
            .filter(|s: &String| !s.is_empty())
            .collect();
        StopMatcher {
            stops,
            pending: String::new(),
            hit: None,
        }
    }

    pub fn stops(&self) -> &[String] {
        &self.stops
    }

    /// Whether a stop string has completed.
    pub fn is_stopped(&self) -> bool {
        self.hit.is_some()
    }

    /// The stop string that ended the stream, if one did.
    pub fn stop_string(&self) -> Option<&str> {
        self.hit.map(|i| self.stops[i].as_str())
    }

    /// Feed the next piece of generated text. Once a stop string has completed, further pieces
    /// are dropped.
    pub fn push(&mut self, piece: &str) -> StopStep {
        if self.hit.is_some() {
            return StopStep::default();
        }
        self.pending.push_str(piece);
        // The earliest stop string in the pending text wins (the first listed on a tie). Nothing
        // before `pending` needs searching: any prefix of a stop string was held back.
        let mut best: Option<(usize, usize)> = None;
        for (i, s) in self.stops.iter().enumerate() {
            if let Some(pos) = self.pending.find(s.as_str()) {
                if best.is_none_or(|(b, _)| pos < b) {
                    best = Some((pos, i));
                }
            }
        }
        if let Some((pos, i)) = best {
            self.pending.truncate(pos);
            self.hit = Some(i);
            return StopStep {
                text: std::mem::take(&mut self.pending),
                stop: Some(self.stops[i].clone()),
            };
        }
        let hold = self.partial_stop_len();
        let emit = self.pending.len() - hold;
        let text = self.pending[..emit].to_string();
        self.pending.drain(..emit);
        StopStep { text, stop: None }
    }

    /// End of generation without a stop string (end-of-sequence token, length limit): returns
    /// the held-back text, which turned out not to be a stop string.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of some stop string.
    /// A stop string starts at a character boundary, so such a suffix does too.
    fn partial_stop_len(&self) -> usize {
        let p = self.pending.as_bytes();
        let mut best = 0;
        for s in &self.stops {
            let s = s.as_bytes();
            let longest = (s.len() - 1).min(p.len());
            for len in (best + 1..=longest).rev() {
                if p[p.len() - len..] == s[..len] {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed pieces, collecting emitted text and the stop string hit.
    fn run(stops: &[&str], pieces: &[&str]) -> (String, Option<String>, Vec<String>) {
        let mut m = StopMatcher::new(stops.iter().copied());
        let mut out = String::new();
        let mut steps = Vec::new();
        let mut stop = None;
        for p in pieces {
            let s = m.push(p);
            out.push_str(&s.text);
            steps.push(s.text);
            if s.stop.is_some() {
                stop = s.stop;
            }
        }
        if stop.is_none() {
            out.push_str(&m.finish());
        }
        (out, stop, steps)
    }

    /// [`run`], checked against the text out and the stop string hit; the steps' texts.
    fn check(stops: &[&str], pieces: &[&str], out: &str, stop: Option<&str>) -> Vec<String> {
        let (got, got_stop, steps) = run(stops, pieces);
        assert_eq!(
            (got.as_str(), got_stop.as_deref()),
            (out, stop),
            "{stops:?} {pieces:?}"
        );
        steps
    }

    #[test]
    fn no_stop_strings_pass_everything_through() {
        let pieces = ["Hello", ", ", "world"];
        assert_eq!(check(&[], &pieces, "Hello, world", None), pieces);
    }

    #[test]
    fn stop_string_split_across_pieces() {
        let pieces = ["Hi there", "<|im", "_e", "nd|>", "ignored"];
        let steps = check(&["<|im_end|>"], &pieces, "Hi there", Some("<|im_end|>"));
        // "<|im" and "<|im_e" are held back rather than shown.
        assert_eq!(steps, ["Hi there", "", "", "", ""]);
    }

    #[test]
    fn text_after_the_stop_string_in_the_same_piece_is_cut() {
        check(&["STOP"], &["abc", "dST", "OPxyz"], "abcd", Some("STOP"));
    }

    #[test]
    fn a_false_start_is_released() {
        let mut m = StopMatcher::new(["</s>"]);
        assert_eq!(m.push("a <").text, "a ");
        assert_eq!(m.push("/").text, "");
        // "</b" cannot become "</s>": everything is released.
        let s = m.push("b> ok");
        assert_eq!(s.text, "</b> ok");
        assert_eq!(s.stop, None);
        assert!(!m.is_stopped());
    }

    #[test]
    fn held_back_text_is_flushed_at_the_end() {
        let steps = check(
            &["\n\nUser:"],
            &["Answer.", "\n", "\nUs"],
            "Answer.\n\nUs",
            None,
        );
        assert_eq!(steps, ["Answer.", "", ""]);
    }

    #[test]
    fn the_earliest_stop_string_wins() {
        check(&["world", "lo"], &["hello world"], "hel", Some("lo"));
        // Overlapping candidates: the held-back tail is the longest possible start.
        check(&["abcd", "bce"], &["xab", "c", "e"], "xa", Some("bce"));
    }

    #[test]
    fn repeated_prefix_characters() {
        // "aab" inside "aaab": the first 'a' is safe only once the match is known.
        let steps = check(&["aab"], &["a", "a", "a", "b", "c"], "a", Some("aab"));
        assert_eq!(steps, ["", "", "a", "", ""]);
    }

    #[test]
    fn multibyte_text_and_stops() {
        check(&["éé"], &["café", " é", "é!"], "café ", Some("éé"));
        assert_eq!(check(&["→"], &["a→b"], "a", Some("→")), ["a"]);
    }

    #[test]
    fn pushes_after_a_stop_are_dropped() {
        let mut m = StopMatcher::new(["x"]);
        assert_eq!(m.push("abx").stop.as_deref(), Some("x"));
        assert!(m.is_stopped());
        assert_eq!(m.stop_string(), Some("x"));
        assert_eq!(m.push("more"), StopStep::default());
        assert_eq!(m.finish(), "");
    }
}
