//! Counters for `GET /metrics`, in Prometheus' text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// The endpoints counted by name; any other path counts as `other` (so that a scan of random
/// URLs cannot grow the label set).
pub const ENDPOINTS: [&str; 8] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/models",
    "/health",
    "/tokenize",
    "/detokenize",
    "/metrics",
    "/props",
];

pub fn endpoint_label(path: &str) -> &'static str {
    ENDPOINTS
        .iter()
        .find(|e| **e == path)
        .copied()
        .unwrap_or("other")
}

#[derive(Default)]
pub struct Metrics {
    /// (endpoint, status) → count.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    prompt_tokens: AtomicU64,
    /// Prompt tokens found in a slot's cache (not evaluated again).
    cached_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    prompt_us: AtomicU64,
    generation_us: AtomicU64,
    completions: AtomicU64,
    cancelled: AtomicU64,
    /// Requests waiting for a slot.
    pub queued: AtomicUsize,
    /// Slots generating.
    pub busy: AtomicUsize,
}

impl Metrics {
    pub fn request(&self, endpoint: &'static str, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((endpoint, status)).or_insert(0) += 1;
    }

    /// A finished generation: prompt tokens evaluated and found in the cache, tokens generated,
    /// and the seconds each phase took.
    pub fn generation(
        &self,
        n_prompt: usize,
        n_cached: usize,
        n_gen: usize,
        prompt_s: f64,
        gen_s: f64,
        cancelled: bool,
    ) {
        self.prompt_tokens.fetch_add(n_prompt as u64, Relaxed);
        self.cached_tokens.fetch_add(n_cached as u64, Relaxed);
        self.generated_tokens.fetch_add(n_gen as u64, Relaxed);
        self.prompt_us.fetch_add((prompt_s * 1e6) as u64, Relaxed);
        self.generation_us.fetch_add((gen_s * 1e6) as u64, Relaxed);
        if cancelled {
            self.cancelled.fetch_add(1, Relaxed);
        } else {
            self.completions.fetch_add(1, Relaxed);
        }
    }

    /// The text exposition. `slots` is the number of slots (0 while loading).
    pub fn render(&self, slots: usize) -> String {
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(s, "# HELP nib_{name} {help}\n# TYPE nib_{name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(s, "nib_{name}{labels} {v}");
            }
        };
        let one = |v: String| [(String::new(), v)];
        let requests: Vec<(String, String)> = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((ep, st), n)| {
                (
                    format!("{{endpoint=\"{ep}\",status=\"{st}\"}}"),
                    n.to_string(),
                )
            })
            .collect();
        metric(
            "requests_total",
            "counter",
            "HTTP requests answered, by endpoint and status.",
            &requests,
        );
        let (pt, gt) = (
            self.prompt_tokens.load(Relaxed),
            self.generated_tokens.load(Relaxed),
        );
        let (ps, gs) = (
            self.prompt_us.load(Relaxed) as f64 / 1e6,
            self.generation_us.load(Relaxed) as f64 / 1e6,
        );
        let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        metric(
            "prompt_tokens_total",
            "counter",
            "Prompt tokens evaluated.",
            &one(pt.to_string()),
        );
        metric(
            "prompt_tokens_cached_total",
            "counter",
            "Prompt tokens reused from a slot's KV cache instead of evaluated.",
            &one(self.cached_tokens.load(Relaxed).to_string()),
        );
        metric(
            "generated_tokens_total",
            "counter",
            "Tokens generated.",
            &one(gt.to_string()),
        );
        metric(
            "prompt_seconds_total",
            "counter",
            "Seconds spent evaluating prompts.",
            &one(format!("{ps:.6}")),
        );
        metric(
            "generation_seconds_total",
            "counter",
            "Seconds spent generating.",
            &one(format!("{gs:.6}")),
        );
        metric(
            "prompt_tokens_per_second",
            "gauge",
            "Average prompt throughput of one slot (prompt tokens / prompt seconds).",
            &one(format!("{:.3}", rate(pt, ps))),
        );
        metric(
            "generated_tokens_per_second",
            "gauge",
            "Average generation throughput of one slot (generated tokens / generation seconds).",
            &one(format!("{:.3}", rate(gt, gs))),
        );
        metric(
            "completions_total",
            "counter",
            "Generations that ran to their end.",
            &one(self.completions.load(Relaxed).to_string()),
        );
        metric(
            "cancelled_total",
            "counter",
            "Generations cancelled (client gone, server stopping).",
            &one(self.cancelled.load(Relaxed).to_string()),
        );
        metric(
            "queue_length",
            "gauge",
            "Requests waiting for a free slot.",
            &one(self.queued.load(Relaxed).to_string()),
        );
        metric(
            "slots_busy",
            "gauge",
            "Slots generating.",
            &one(self.busy.load(Relaxed).to_string()),
        );
        metric(
            "slots_total",
            "gauge",
            "Slots (parallel generations).",
            &one(slots.to_string()),
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.request(endpoint_label("/v1/completions"), 200);
        m.request(endpoint_label("/v1/completions"), 200);
        m.request(endpoint_label("/nope"), 404);
        m.generation(10, 2, 5, 0.5, 1.0, false);
        let t = m.render(4);
        assert!(
            t.contains("nib_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 2\n"),
            "{t}"
        );
        assert!(t.contains("nib_requests_total{endpoint=\"other\",status=\"404\"} 1\n"));
        assert!(t.contains("nib_prompt_tokens_total 10\n"));
        assert!(t.contains("nib_generated_tokens_per_second 5.000\n"));
        assert!(t.contains("nib_slots_total 4\n"));
        assert!(t.contains("# TYPE nib_queue_length gauge\n"));
    }
}
