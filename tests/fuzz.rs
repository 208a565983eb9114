//! A fuzzing harness that runs on stable Rust, as an ordinary integration test: seeded,
//! deterministic mutation of nib's inputs, each case run in a child process (this test binary
//! run again with `NIB_FUZZ_CHILD` naming the cases) so that a panic, an abort, a hang or an
//! allocation refused by the cap below is caught, and the failing case printed with the command
//! that repeats it.
//!
//! Targets (one test each, so the test harness runs them side by side):
//! - `gguf-smollm2`, `gguf-gemma3`: the real model files with their header mutated (version,
//!   counts; metadata values set to extremes, retyped, restrung, arrays resized or cut, keys
//!   dropped or duplicated; tensor infos' dimensions, types, offsets and names; random bytes;
//!   truncation; weights set to NaN), then the whole load: `Gguf::from_bytes`, the tokenizer,
//!   the chat template, `Model::from_gguf_with` and a two-token eval plus one decode step.
//! - `tokenizer`: random bytes, Unicode from many scripts, special-token-like strings and
//!   mutated golden texts through both models' tokenizers (every flag), token ids checked in
//!   range, detokenized, streamed, and byte-level BPE required to give the text back.
//! - `template`: mutated and generated Jinja through `ChatTemplate::new` and `render`.
//! - `request`: mutated JSON bodies through the server's request parsing
//!   (`parse_object`, `parse_gen`, `parse_prompt`, `parse_messages`).
//!
//! Cases per target: the defaults below (the whole test takes about a minute on 2 cores), or
//! `NIB_FUZZ_CASES` for each target; `NIB_FUZZ_SEED` picks another stream of cases. Each case's
//! mutation comes from its seed alone, so a failure repeats with the printed command.
//! Failures listed in [`KNOWN`] (bugs found and not fixed yet) are reported but do not fail the
//! test; [`reproducers`] keeps each bug found as a named regression case.

mod common;

use common::argmax;

use nib::chat::{ChatTemplate, Message};
use nib::gguf::Gguf;
use nib::model::{Context, KvType, Logits, Model};
use nib::tokenizer::Tokenizer;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// The allocation cap.

/// The largest allocation a case may make: a request above it is refused (null), which a
/// `Vec` or `Box` turns into an abort (`memory allocation of N bytes failed`), which the parent
/// reports as a failure. Memory maps are not counted (the models are read into memory here).
const ALLOC_CAP: usize = 4 << 30;

struct Capped;

// SAFETY: every call is forwarded unchanged to the system allocator, except allocations above
// the cap, which return null as `GlobalAlloc` allows for a failed allocation.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's layout contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout (nothing else hands out pointers).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOC_CAP {
            return std::ptr::null_mut();
        }
        // SAFETY: as in `dealloc`; `new_size` is checked by `System` as by any allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

// ---------------------------------------------------------------------------------------------
// Randomness: SplitMix64, enough for mutation and free of dependencies.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    fn pick_str(&mut self, v: &[&'static str]) -> &'static str {
        v[self.below(v.len())]
    }
}

/// The seed of case `i` of `target`: depends only on the three.
fn case_seed(master: u64, target: &str, i: u64) -> u64 {
    let mut h = master ^ 0xcbf2_9ce4_8422_2325;
    for b in target.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    Rng::new(h ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next()
}

fn master_seed() -> u64 {
    std::env::var("NIB_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6e69_6266)
}

/// Integer extremes, the values a hand-made or corrupted file most likely holds.
const EXTREMES: [u64; 14] = [
    0,
    1,
    2,
    3,
    u64::MAX,      // -1
    u64::MAX - 1,  // -2
    1 << 31,       // i32::MIN as u32
    (1 << 31) - 1, // i32::MAX
    (1 << 32) - 1, // u32::MAX
    1 << 32,
    1 << 63,       // i64::MIN
    (1 << 63) - 1, // i64::MAX
    1 << 40,
    65536,
];

// ---------------------------------------------------------------------------------------------
// GGUF layout: where each header field sits, so mutations hit fields rather than random bytes.

#[derive(Clone, Debug)]
struct Kv {
    key: String,
    /// Offset of the key's length field (the entry's start) and of its end.
    start: usize,
    end: usize,
    type_at: usize,
    ty: u32,
    value_at: usize,
    /// For arrays: the element type, the count, and the offset of the last element.
    array: Option<(u32, u64, usize)>,
}

#[derive(Clone, Debug)]
struct Ti {
    n_dims_at: usize,
    dims_at: Vec<usize>,
    dims: Vec<u64>,
    type_at: usize,
    offset_at: usize,
    offset: u64,
    name_at: usize,
    name_len: usize,
}

struct GgufLayout {
    kvs: Vec<Kv>,
    tensors: Vec<Ti>,
    /// End of the tensor infos; the data section starts at the next multiple of the alignment.
    infos_end: usize,
}

fn rd_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn rd_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn wr_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn wr_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Size of a scalar of GGUF type `ty`.
fn scalar_size(ty: u32) -> Option<usize> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

/// Skip one value of type `ty` at `at`; the offset after it.
fn skip_value(b: &[u8], at: usize, ty: u32) -> Option<usize> {
    if ty == 8 {
        let n = rd_u64(b, at)? as usize;
        return at.checked_add(8)?.checked_add(n).filter(|&e| e <= b.len());
    }
    Some(at + scalar_size(ty)?)
}

/// The layout of a well-formed (or mutated but still walkable) GGUF header.
fn walk(b: &[u8]) -> Option<GgufLayout> {
    let n_tensors = rd_u64(b, 8)?;
    let n_kv = rd_u64(b, 16)?;
    if n_kv > 1 << 20 || n_tensors > 1 << 20 {
        return None;
    }
    let mut at = 24;
    let mut kvs = Vec::new();
    for _ in 0..n_kv {
        let start = at;
        let klen = rd_u64(b, at)? as usize;
        let key = String::from_utf8_lossy(b.get(at + 8..at.checked_add(8 + klen)?)?).into_owned();
        at += 8 + klen;
        let type_at = at;
        let ty = rd_u32(b, at)?;
        at += 4;
        let value_at = at;
        let mut array = None;
        if ty == 9 {
            let ety = rd_u32(b, at)?;
            let n = rd_u64(b, at + 4)?;
            at += 12;
            let mut last = at;
            for _ in 0..n {
                last = at;
                at = skip_value(b, at, ety)?;
            }
            array = Some((ety, n, last));
        } else {
            at = skip_value(b, at, ty)?;
        }
        kvs.push(Kv {
            key,
            start,
            end: at,
            type_at,
            ty,
            value_at,
            array,
        });
    }
    let mut tensors = Vec::new();
    for _ in 0..n_tensors {
        let name_at = at;
        let name_len = rd_u64(b, at)? as usize;
        at = at.checked_add(8 + name_len)?;
        let n_dims_at = at;
        let n_dims = rd_u32(b, at)? as usize;
        if n_dims > 8 {
            return None;
        }
        at += 4;
        let mut dims_at = Vec::new();
        let mut dims = Vec::new();
        for _ in 0..n_dims {
            dims_at.push(at);
            dims.push(rd_u64(b, at)?);
            at += 8;
        }
        let type_at = at;
        let offset_at = at + 4;
        let offset = rd_u64(b, offset_at)?;
        at += 12;
        tensors.push(Ti {
            n_dims_at,
            dims_at,
            dims,
            type_at,
            offset_at,
            offset,
            name_at,
            name_len,
        });
    }
    Some(GgufLayout {
        kvs,
        tensors,
        infos_end: at,
    })
}

/// A model file cut in two: the header (magic to the end of the tensor infos), which mutations
/// may resize, and the data section, re-aligned behind it when the file is put back together.
struct Split {
    head: Vec<u8>,
    data_start: usize,
    align: usize,
}

impl Split {
    fn new(file: &[u8]) -> Split {
        let l = walk(file).expect("the model's header walks");
        let align = l
            .kvs
            .iter()
            .find(|k| k.key == "general.alignment")
            .and_then(|k| rd_u32(file, k.value_at))
            .unwrap_or(32) as usize;
        Split {
            head: file[..l.infos_end].to_vec(),
            data_start: l.infos_end.div_ceil(align) * align,
            align,
        }
    }

    /// The file: `head`, zero padding to the alignment, the original data section.
    fn assemble(&self, head: &[u8], file: &[u8]) -> Vec<u8> {
        let start = head.len().div_ceil(self.align) * self.align;
        let mut out = Vec::with_capacity(start + file.len() - self.data_start);
        out.extend_from_slice(head);
        out.resize(start, 0);
        out.extend_from_slice(&file[self.data_start..]);
        out
    }
}

/// One mutation of a model file's header (`head`) or, for some, of the assembled file; returns
/// what it did, in words (the case's description).
fn mutate_gguf(rng: &mut Rng, head: &mut Vec<u8>, post: &mut Vec<PostOp>, arch: &str) -> String {
    let Some(l) = walk(head) else {
        // An earlier mutation left the header unwalkable: flip bytes.
        return flip_bytes(rng, head);
    };
    match rng.below(100) {
        0..=3 => {
            let (what, at, wide) = *rng.pick(&[
                ("version", 4, false),
                ("tensor count", 8, true),
                ("metadata count", 16, true),
            ]);
            let v = *rng.pick(&EXTREMES);
            if wide {
                let old = rd_u64(head, at).unwrap();
                let v = *rng.pick(&[v, old.wrapping_add(1), old.wrapping_sub(1)]);
                wr_u64(head, at, v);
                format!("header {what} = {v}")
            } else {
                wr_u32(head, at, v as u32);
                format!("header {what} = {}", v as u32)
            }
        }
        // Scalars, hyperparameters twice as often as the rest.
        4..=39 => {
            let scalars: Vec<&Kv> = l
                .kvs
                .iter()
                .filter(|k| scalar_size(k.ty).is_some())
                .collect();
            let hyper: Vec<&Kv> = scalars
                .iter()
                .copied()
                .filter(|k| k.key.starts_with(arch))
                .collect();
            let k = if !hyper.is_empty() && rng.chance(2, 3) {
                *rng.pick(&hyper)
            } else {
                *rng.pick(&scalars)
            };
            set_scalar(rng, head, k)
        }
        40..=45 => {
            let k = rng.pick(&l.kvs);
            let ty = if rng.chance(1, 8) {
                u32::MAX
            } else {
                rng.below(14) as u32
            };
            wr_u32(head, k.type_at, ty);
            format!("kv {} type {} -> {ty}", k.key, k.ty)
        }
        46..=55 => {
            let strings: Vec<&Kv> = l.kvs.iter().filter(|k| k.ty == 8).collect();
            let k = *rng.pick(&strings);
            let len = rd_u64(head, k.value_at).unwrap();
            match rng.below(3) {
                0 => {
                    let v = *rng.pick(&[0, len.wrapping_sub(1), len + 1, 1 << 40, u64::MAX]);
                    wr_u64(head, k.value_at, v);
                    format!("kv {} string length {len} -> {v}", k.key)
                }
                1 => {
                    let new = random_string(rng);
                    let mut entry = head[k.start..k.value_at].to_vec();
                    entry.extend_from_slice(&(new.len() as u64).to_le_bytes());
                    entry.extend_from_slice(&new);
                    head.splice(k.start..k.end, entry);
                    format!("kv {} = {:?}", k.key, String::from_utf8_lossy(&new))
                }
                _ => {
                    let n = len as usize;
                    if n > 0 {
                        let i = k.value_at + 8 + rng.below(n);
                        head[i] = rng.next() as u8;
                    }
                    format!("kv {} one byte of the string changed", k.key)
                }
            }
        }
        56..=67 => {
            let arrays: Vec<&Kv> = l.kvs.iter().filter(|k| k.array.is_some()).collect();
            let k = *rng.pick(&arrays);
            let (ety, n, last) = k.array.unwrap();
            match rng.below(4) {
                0 => {
                    let v = *rng.pick(&[
                        0,
                        1,
                        n.wrapping_sub(1),
                        n + 1,
                        n * 2,
                        1 << 31,
                        1 << 32,
                        u64::MAX,
                    ]);
                    wr_u64(head, k.value_at + 4, v);
                    format!("kv {} array count {n} -> {v}", k.key)
                }
                1 => {
                    let v = rng.below(14) as u32;
                    wr_u32(head, k.value_at, v);
                    format!("kv {} array element type {ety} -> {v}", k.key)
                }
                2 if n > 0 => {
                    // Drop elements from the end, properly: a consistent array one entry short.
                    wr_u64(head, k.value_at + 4, n - 1);
                    head.drain(last..k.end);
                    format!("kv {} array cut to {} elements", k.key, n - 1)
                }
                _ => {
                    let elem = head[last..k.end].to_vec();
                    wr_u64(head, k.value_at + 4, n + 1);
                    head.splice(k.end..k.end, elem);
                    format!(
                        "kv {} array's last element doubled ({} elements)",
                        k.key,
                        n + 1
                    )
                }
            }
        }
        68..=71 => {
            // Drop or duplicate a whole entry, keeping the count right.
            let k = rng.pick(&l.kvs).clone();
            let n = rd_u64(head, 16).unwrap();
            if rng.chance(1, 2) {
                head.drain(k.start..k.end);
                wr_u64(head, 16, n.wrapping_sub(1));
                format!("kv {} removed", k.key)
            } else {
                let entry = head[k.start..k.end].to_vec();
                head.splice(k.end..k.end, entry);
                wr_u64(head, 16, n + 1);
                format!("kv {} duplicated", k.key)
            }
        }
        72..=87 => {
            let i = rng.below(l.tensors.len());
            let t = &l.tensors[i];
            let name = String::from_utf8_lossy(&head[t.name_at + 8..t.name_at + 8 + t.name_len])
                .into_owned();
            match rng.below(5) {
                0 => {
                    let v = *rng.pick(&[0u32, 1, 3, 4, 5, 9, u32::MAX]);
                    wr_u32(head, t.n_dims_at, v);
                    format!("tensor {name} n_dims {} -> {v}", t.dims.len())
                }
                1 if !t.dims.is_empty() => {
                    let j = rng.below(t.dims.len());
                    let d = t.dims[j];
                    let v = *rng.pick(&[
                        0,
                        1,
                        d.wrapping_sub(1),
                        d + 1,
                        d.wrapping_mul(2),
                        d / 2,
                        1 << 31,
                        1 << 32,
                        1 << 62,
                        u64::MAX,
                    ]);
                    wr_u64(head, t.dims_at[j], v);
                    format!("tensor {name} dim {j} {d} -> {v}")
                }
                2 => {
                    let v = if rng.chance(1, 6) {
                        *rng.pick(&[255u32, u32::MAX, 40, 1 << 31])
                    } else {
                        rng.below(40) as u32
                    };
                    let old = rd_u32(head, t.type_at).unwrap();
                    wr_u32(head, t.type_at, v);
                    format!("tensor {name} type {old} -> {v}")
                }
                3 => {
                    let other = l.tensors[rng.below(l.tensors.len())].offset;
                    let o = t.offset;
                    let v = *rng.pick(&[
                        0,
                        o + 1,
                        o.wrapping_sub(32),
                        o + 32,
                        other,
                        1 << 40,
                        u64::MAX,
                        u64::MAX - 31,
                    ]);
                    wr_u64(head, t.offset_at, v);
                    format!("tensor {name} offset {o} -> {v}")
                }
                _ => {
                    if t.name_len > 0 {
                        let at = t.name_at + 8 + rng.below(t.name_len);
                        head[at] = *rng.pick(&[b'x', b'.', b'0', 0, 0xff]);
                    }
                    format!("tensor {name} name changed")
                }
            }
        }
        88..=93 => flip_bytes(rng, head),
        94..=96 => {
            let at = rng.next();
            post.push(PostOp::Truncate(at));
            format!("file truncated (at {at} modulo its length)")
        }
        _ => {
            let t = rng.pick(&l.tensors);
            post.push(PostOp::Nan(t.offset as usize));
            "weights set to 0xff bytes (NaN scales)".to_string()
        }
    }
}

/// Changes to the assembled file.
enum PostOp {
    /// At this offset modulo the file's length.
    Truncate(u64),
    /// 4 KiB of 0xff at this offset into the data section.
    Nan(usize),
}

fn flip_bytes(rng: &mut Rng, head: &mut [u8]) -> String {
    let n = 1 + rng.below(8);
    for _ in 0..n {
        let at = rng.below(head.len());
        head[at] ^= 1 << rng.below(8);
    }
    format!("{n} random bits flipped in the header")
}

fn set_scalar(rng: &mut Rng, head: &mut [u8], k: &Kv) -> String {
    let at = k.value_at;
    match k.ty {
        6 | 12 => {
            let v = *rng.pick(&[
                0.0,
                -1.0,
                1e-30,
                1e30,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                -0.0,
                1e300,
            ]);
            if k.ty == 6 {
                head[at..at + 4].copy_from_slice(&(v as f32).to_le_bytes());
            } else {
                head[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            format!("kv {} = {v}", k.key)
        }
        7 => {
            let v = *rng.pick(&[0u8, 1, 2, 255]);
            head[at] = v;
            format!("kv {} = bool byte {v}", k.key)
        }
        _ => {
            let size = scalar_size(k.ty).unwrap();
            let old = match size {
                1 => head[at] as u64,
                2 => u16::from_le_bytes([head[at], head[at + 1]]) as u64,
                4 => rd_u32(head, at).unwrap() as u64,
                _ => rd_u64(head, at).unwrap(),
            };
            let v = if rng.chance(1, 4) {
                *rng.pick(&[
                    old.wrapping_add(1),
                    old.wrapping_sub(1),
                    old.wrapping_mul(2),
                    old / 2,
                ])
            } else {
                *rng.pick(&EXTREMES)
            };
            head[at..at + size].copy_from_slice(&v.to_le_bytes()[..size]);
            let mask = if size == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * size)) - 1
            };
            format!("kv {} = {} (type {}, was {old})", k.key, v & mask, k.ty)
        }
    }
}

fn random_string(rng: &mut Rng) -> Vec<u8> {
    match rng.below(4) {
        0 => Vec::new(),
        1 => rng
            .pick(&[
                "llama", "gemma3", "qwen2", "qwen3", "gpt2", "gemma", "bert", "mamba",
            ])
            .as_bytes()
            .to_vec(),
        2 => (0..rng.below(40)).map(|_| rng.next() as u8).collect(),
        _ => random_text(rng, 64),
    }
}

struct GgufBase {
    file: Vec<u8>,
    split: Split,
    arch: String,
}

impl GgufBase {
    fn new(model: &str) -> GgufBase {
        let file = std::fs::read(common::model_path(model)).unwrap();
        let g = Gguf::from_bytes(file.clone()).unwrap();
        let arch = g.get_str("general.architecture").unwrap().to_string();
        drop(g);
        let split = Split::new(&file);
        GgufBase { file, split, arch }
    }

    /// Case `seed`: the mutated file and its description.
    fn case(&self, seed: u64) -> (Vec<u8>, String, bool) {
        let mut rng = Rng::new(seed);
        let mut head = self.split.head.clone();
        let mut post = Vec::new();
        let n = 1 + rng.below(3);
        let desc: Vec<String> = (0..n)
            .map(|_| mutate_gguf(&mut rng, &mut head, &mut post, &self.arch))
            .collect();
        let mut file = self.split.assemble(&head, &self.file);
        let head_len = head.len();
        for p in post {
            match p {
                PostOp::Truncate(at) => {
                    let len = file.len() as u64;
                    file.truncate((at % len.max(1)) as usize)
                }
                PostOp::Nan(off) => {
                    let start = (head_len.div_ceil(self.split.align) * self.split.align)
                        .saturating_add(off)
                        .min(file.len());
                    let end = (start + 4096).min(file.len());
                    file[start..end].fill(0xff);
                }
            }
        }
        (file, desc.join("; "), rng.chance(1, 2))
    }
}

/// The whole load of a (mutated) model file, and a short evaluation: errors are fine, panics
/// and aborts are not.
fn load_and_eval(file: Vec<u8>, interleave: bool) {
    let Ok(g) = Gguf::from_bytes(file) else {
        return;
    };
    let tok = Tokenizer::from_gguf(&g).ok();
    if let Ok(t) = ChatTemplate::from_gguf(&g, None) {
        let _ = t.render(&[Message::user("Hi")], true);
    }
    let Ok(model) = Model::from_gguf_with(g, interleave) else {
        return;
    };
    let model = Arc::new(model);
    let n_vocab = model.hp.n_vocab;
    let mut ids = match &tok {
        Some(t) => t.tokenize("Hello world", true, true),
        None => vec![0, 1],
    };
    if let Some(t) = &tok {
        let _ = t.detokenize(&ids);
    }
    ids.retain(|&i| (i as usize) < n_vocab);
    if ids.is_empty() {
        ids.push(0);
    }
    ids.truncate(3);
    let Ok(mut ctx) = Context::new(model, 16, 16, KvType::F16) else {
        return;
    };
    if let Ok(l) = ctx.eval(&ids, Logits::Last) {
        let next = argmax(l);
        let _ = ctx.eval(&[next], Logits::Last);
    }
}

// ---------------------------------------------------------------------------------------------
// Texts: random bytes, Unicode and special-token-like strings.

/// Fragments that stress tokenizers: specials whole and cut, whitespace runs, digits, scripts,
/// combining marks, joiners, controls.
const FRAGMENTS: &[&str] = &[
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|im_start",
    "|>",
    "<|",
    "<<|im_end|>|>",
    "<bos>",
    "<eos>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_turn",
    "<pad>",
    "<unk>",
    "<s>",
    "</s>",
    "<mask>",
    "[INST]",
    "<0x0A>",
    "<0xFF>",
    "▁",
    "▁▁▁",
    "Ġ",
    "Ċ",
    " ",
    "  ",
    "\n",
    "\n\n\n",
    "\r\n",
    "\t",
    "\u{a0}",
    "\u{3000}",
    "\u{200b}",
    "\u{200d}",
    "\u{feff}",
    "\u{0}",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "123",
    "4567890",
    "3.14",
    "'s",
    "'LL",
    "n't",
    "Hello",
    " world",
    "ℌ𝔢𝔩𝔩𝔬",
    "e\u{301}",
    "\u{301}\u{301}\u{301}",
    "한국어",
    "日本語のテキスト",
    "中文",
    "العربية",
    "עברית",
    "हिन्दी",
    "ไทย",
    "Ελληνικά",
    "кириллица",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "🇫🇷",
    "\u{10ffff}",
    "\u{fffd}",
    "ﬁ",
    "Ⅻ",
    "½",
    "::",
    "...",
    "```",
    "{{",
    "}}",
    "{%",
];

fn random_text(rng: &mut Rng, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let n = rng.below(max + 1);
    while out.len() < n {
        match rng.below(4) {
            0 => out.extend_from_slice(rng.pick(FRAGMENTS).as_bytes()),
            1 => out.push(0x20 + rng.below(0x5f) as u8),
            2 => {
                // A scalar from anywhere in Unicode.
                let c = loop {
                    let ranges: [(u32, u32); 6] = [
                        (0, 0x80),
                        (0x80, 0x800),
                        (0x800, 0x3000),
                        (0x3000, 0xd800),
                        (0xe000, 0x10000),
                        (0x10000, 0x110000),
                    ];
                    let (lo, hi) = *rng.pick(&ranges);
                    if let Some(c) = char::from_u32(lo + rng.below((hi - lo) as usize) as u32) {
                        break c;
                    }
                };
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
            _ => out.push(rng.next() as u8),
        }
    }
    out
}

/// A text for the tokenizer: random bytes, random text, a long run, or a mutated golden text.
fn tokenizer_input(rng: &mut Rng, samples: &[Vec<u8>]) -> Vec<u8> {
    match rng.below(10) {
        0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
        1 => {
            let unit = random_text(rng, 4);
            let max = if rng.chance(1, 4) { 20000 } else { 200 };
            let n = 1 + rng.below(max);
            unit.repeat(n.min(20000 / unit.len().max(1)).max(1))
        }
        2..=4 => {
            let mut t = rng.pick(samples).clone();
            for _ in 0..1 + rng.below(4) {
                mutate_bytes(rng, &mut t);
            }
            t
        }
        _ => random_text(rng, 300),
    }
}

/// One byte-level edit: flip, insert a fragment, delete or duplicate a span, truncate.
fn mutate_bytes(rng: &mut Rng, t: &mut Vec<u8>) {
    let at = rng.below(t.len() + 1);
    match rng.below(5) {
        0 if !t.is_empty() => {
            let i = rng.below(t.len());
            t[i] = rng.next() as u8;
        }
        1 => {
            let f = rng.pick(FRAGMENTS).as_bytes().to_vec();
            t.splice(at..at, f);
        }
        2 => {
            let end = (at + rng.below(20)).min(t.len());
            t.drain(at..end);
        }
        3 => {
            let end = (at + rng.below(40)).min(t.len());
            let span = t[at..end].to_vec();
            t.splice(at..at, span);
        }
        _ => t.truncate(at),
    }
}

/// The golden texts (`tok_public.txt`, `extra_tok.txt`), split at their 0x1E separators.
fn golden_texts() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for name in ["tok_public.txt", "extra_tok.txt", "prompts_public.txt"] {
        let b = std::fs::read(common::golden_path(name)).unwrap();
        for t in b.split(|&c| c == 0x1e) {
            out.push(t.to_vec());
        }
    }
    out
}

struct TokBase {
    toks: Vec<(Tokenizer, bool)>,
    samples: Vec<Vec<u8>>,
}

impl TokBase {
    fn new() -> TokBase {
        let toks = [(common::SMOLLM2, true), (common::GEMMA3, false)]
            .into_iter()
            .map(|(m, bpe)| {
                let g = Gguf::open(common::model_path(m)).unwrap();
                (Tokenizer::from_gguf(&g).unwrap(), bpe)
            })
            .collect();
        TokBase {
            toks,
            samples: golden_texts(),
        }
    }

    fn case(&self, seed: u64) -> (Vec<u8>, usize, bool, bool, String) {
        let mut rng = Rng::new(seed);
        let text = tokenizer_input(&mut rng, &self.samples);
        let which = rng.below(self.toks.len());
        let add = rng.chance(1, 2);
        let parse = rng.chance(1, 2);
        let shown: String = String::from_utf8_lossy(&text).chars().take(60).collect();
        let desc = format!(
            "{} bytes {shown:?}… through {} (add_special {add}, parse_special {parse})",
            text.len(),
            ["SmolLM2", "Gemma 3"][which]
        );
        (text, which, add, parse, desc)
    }

    fn run(&self, seed: u64, text: &[u8], which: usize, add: bool, parse: bool) {
        let (t, bpe) = &self.toks[which];
        let n = t.n_vocab();
        let ids = t.tokenize_bytes(text, add, parse);
        assert!(
            ids.iter().all(|&i| (i as usize) < n),
            "a token id out of the vocabulary"
        );
        let back = t.detokenize_bytes(&ids, add, parse);
        // Byte-level BPE spells every printable ASCII byte: such text comes back exactly. (Not all text:
        // as llama.cpp's, a character whose bytes the pre-tokenizer leaves without a token,
        // such as an unassigned plane-9 code point, loses bytes.)
        // Printable ASCII only: llama.cpp's SmolLM2 drops some control bytes (0x06, 0x13,
        // 0x14, 0x16 …: `llama-tokenize -p $'ab\x16cd'` gives "ab", "cd"), and nib with it.
        let plain = |&b: &u8| b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b);
        if *bpe && !add && !parse && text.iter().all(plain) {
            assert!(
                back == text,
                "SmolLM2 does not give the text back: {:?} -> {:?}",
                String::from_utf8_lossy(text),
                String::from_utf8_lossy(&back)
            );
        }
        let mut sd = nib::tokenizer::StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &ids {
            streamed.push_str(&sd.push(t, id));
        }
        streamed.push_str(&sd.finish());
        // Random ids, every flag.
        let mut rng = Rng::new(seed ^ 1);
        let rand: Vec<u32> = (0..rng.below(50)).map(|_| rng.below(n) as u32).collect();
        let _ = t.detokenize_bytes(&rand, rng.chance(1, 2), rng.chance(1, 2));
        let _ = t.detokenize(&rand);
        for &id in &rand {
            let _ = t.token_to_piece(id);
            let _ = t.token_to_piece_special(id, true);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Chat templates.

const JINJA: &[&str] = &[
    "{%",
    "%}",
    "{{",
    "}}",
    "{#",
    "#}",
    "{%-",
    "-%}",
    "{{-",
    "-}}",
    " for m in messages ",
    " endfor ",
    " if ",
    " elif ",
    " else ",
    " endif ",
    " set x = ",
    " x ",
    " set ns = namespace(n=0) ",
    " set ns.n = ns.n + 1 ",
    "ns.n",
    "range(",
    ")",
    "(",
    "[",
    "]",
    ",",
    "messages",
    "messages[0]",
    "messages[-1]",
    "message['content']",
    "m['role']",
    "m.content",
    "loop.index",
    "loop.last",
    "loop.first",
    "|length",
    "|upper",
    "|trim",
    "|tojson",
    "|join(', ')",
    "|reverse",
    "|first",
    "|list",
    "|default('x')",
    "|replace('a', 'b')",
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "**",
    "~",
    "==",
    "!=",
    "<",
    " and ",
    " or ",
    " not ",
    " in ",
    " is defined ",
    " is none ",
    "'",
    "\"",
    "\\",
    "raise_exception('refused')",
    "[::-1]",
    "[1:]",
    "[:2]",
    "0",
    "1",
    "-1",
    "2147483647",
    "9223372036854775807",
    "1e308",
    "1e309",
    "99999",
    "'ab' * 1000",
    "bos_token",
    "eos_token",
    "add_generation_prompt",
    " macro f(a) ",
    " endmacro ",
    "f(1)",
    " call f(1) ",
    " endcall ",
    " filter upper ",
    " endfilter ",
    " raw ",
    " endraw ",
    "\n",
    " ",
    "caller()",
    " include 'chat' ",
    " extends 'chat' ",
    " block b ",
    " endblock ",
    ".items()",
    ".split(' ')",
    ".startswith('a')",
    "dict(a=1)",
    "none",
    "true",
    "false",
    "strftime_now('%Y')",
    "<|im_start|>",
    "<start_of_turn>",
    "{{ m['content'] }}",
    "{% for m in messages %}{{ m.role }}{% endfor %}",
];

/// A Jinja expression from the pieces chat templates use.
fn gen_expr(rng: &mut Rng, s: &mut String, depth: usize) {
    const ATOMS: &[&str] = &[
        "messages",
        "message",
        "m",
        "x",
        "ns.n",
        "loop.index",
        "loop.index0",
        "loop.length",
        "loop.first",
        "loop.last",
        "bos_token",
        "eos_token",
        "add_generation_prompt",
        "m['role']",
        "m['content']",
        "m.content",
        "messages[0]",
        "messages[-1]",
        "messages[1:]",
        "messages|length",
        "0",
        "1",
        "-1",
        "2",
        "7",
        "1000",
        "2147483647",
        "9223372036854775807",
        "1e308",
        "0.5",
        "''",
        "'user'",
        "'<|im_start|>'",
        "'a\\nb'",
        "none",
        "true",
        "false",
        "[]",
        "[1, 2, 3]",
        "{}",
        "{'role': 'user'}",
        "range(3)",
        "range(10000)",
        "undefined_var",
        "tools",
        "strftime_now('%d %b %Y')",
        "'%s'",
        "x.y.z",
    ];
    const OPS: &[&str] = &[
        " + ", " - ", " * ", " / ", " // ", " % ", " ** ", " ~ ", " == ", " != ", " < ", " >= ",
        " and ", " or ", " in ", " not in ", " if ", " is ",
    ];
    const FILTERS: &[&str] = &[
        "|length",
        "|upper",
        "|lower",
        "|trim",
        "|tojson",
        "|tojson(indent=2)",
        "|string",
        "|int",
        "|float",
        "|abs",
        "|first",
        "|last",
        "|list",
        "|reverse",
        "|sort",
        "|unique",
        "|join(', ')",
        "|default('d')",
        "|replace('a', 'bb')",
        "|title",
        "|capitalize",
        "|items",
        "|map(attribute='role')",
        "|selectattr('role', 'equalto', 'user')",
        "|batch(2)",
        "|indent(4)",
        "|wordcount",
        "|round",
        "|safe",
        "|escape",
        "|center(9)",
        "|sum",
        "|min",
        "|max",
        "|dictsort",
        "|split",
        "|count",
    ];
    const TESTS: &[&str] = &[
        "defined",
        "none",
        "string",
        "number",
        "mapping",
        "iterable",
        "sequence",
        "odd",
        "even",
        "divisibleby(0)",
        "divisibleby(3)",
        "true",
        "false",
    ];
    if depth > 3 {
        s.push_str(rng.pick_str(ATOMS));
        return;
    }
    match rng.below(10) {
        0..=3 => s.push_str(rng.pick_str(ATOMS)),
        4 | 5 => {
            gen_expr(rng, s, depth + 1);
            let op = rng.pick_str(OPS);
            s.push_str(op);
            if op == " is " {
                s.push_str(rng.pick_str(TESTS));
            } else {
                gen_expr(rng, s, depth + 1);
                if op == " if " {
                    s.push_str(" else ");
                    gen_expr(rng, s, depth + 1);
                }
            }
        }
        6 | 7 => {
            s.push('(');
            gen_expr(rng, s, depth + 1);
            s.push(')');
            s.push_str(rng.pick_str(FILTERS));
        }
        8 => {
            s.push_str("not ");
            gen_expr(rng, s, depth + 1);
        }
        _ => {
            s.push('(');
            gen_expr(rng, s, depth + 1);
            s.push_str(rng.pick_str(&[
                ")[0]",
                ")[1:-1]",
                ")['content']",
                ").split(' ')",
                ").startswith('a')",
                ").strip()",
                ").items()",
                ")[::-1]",
            ]));
        }
    }
}

/// A sequence of Jinja statements and text, nested up to a few levels.
fn gen_block(rng: &mut Rng, s: &mut String, depth: usize) {
    for _ in 0..1 + rng.below(4) {
        match rng.below(if depth > 2 { 3 } else { 9 }) {
            0 => s.push_str(rng.pick_str(&[
                "<|im_start|>",
                "\n",
                "text ",
                "{{ '\n' }}",
                "<start_of_turn>",
                " ",
            ])),
            1 | 2 => {
                s.push_str("{{ ");
                gen_expr(rng, s, 0);
                s.push_str(" }}");
            }
            3 => {
                s.push_str("{% set x = ");
                gen_expr(rng, s, 0);
                s.push_str(" %}");
            }
            4 | 5 => {
                s.push_str(rng.pick_str(&[
                    "{% for m in ",
                    "{%- for message in ",
                    "{% for x in ",
                    "{% for k, v in ",
                ]));
                gen_expr(rng, s, 1);
                if rng.chance(1, 4) {
                    s.push_str(" if ");
                    gen_expr(rng, s, 2);
                }
                s.push_str(" %}");
                gen_block(rng, s, depth + 1);
                if rng.chance(1, 4) {
                    s.push_str("{% else %}");
                    gen_block(rng, s, depth + 1);
                }
                s.push_str("{% endfor %}");
            }
            6 | 7 => {
                s.push_str("{% if ");
                gen_expr(rng, s, 0);
                s.push_str(" %}");
                gen_block(rng, s, depth + 1);
                if rng.chance(1, 2) {
                    s.push_str("{% elif ");
                    gen_expr(rng, s, 0);
                    s.push_str(" %}");
                    gen_block(rng, s, depth + 1);
                }
                s.push_str("{% endif %}");
            }
            _ => {
                let pick = rng.below(5);
                match pick {
                    0 => s.push_str("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}"),
                    1 => s.push_str("{% macro f(a, b=2) %}{{ a ~ b }}{% if a %}{{ caller() if caller else '' }}{% endif %}{% endmacro %}{{ f(1) }}{% call f(0) %}c{% endcall %}"),
                    2 => s.push_str("{{ raise_exception('refused: ' ~ (messages|length)) }}"),
                    3 => s.push_str("{% filter upper %}"),
                    _ => s.push_str("{% raw %}{{ not parsed }}{% endraw %}"),
                }
                if pick == 3 {
                    gen_block(rng, s, depth + 1);
                    s.push_str("{% endfilter %}");
                }
            }
        }
    }
}

struct TemplateBase {
    sources: Vec<String>,
}

impl TemplateBase {
    fn new() -> TemplateBase {
        let mut sources: Vec<String> = nib::chat::BUILTIN_TEMPLATES
            .iter()
            .map(|(_, s)| s.to_string())
            .collect();
        for m in [common::SMOLLM2, common::GEMMA3] {
            let g = Gguf::open(common::model_path(m)).unwrap();
            if let Ok(Some(s)) = g.opt_str("tokenizer.chat_template") {
                sources.push(s.to_string());
            }
        }
        TemplateBase { sources }
    }

    fn case(&self, seed: u64) -> (String, Vec<Message>, bool) {
        let mut rng = Rng::new(seed);
        let kind = rng.below(10);
        let mut src: Vec<u8> = if kind < 5 {
            // Well-formed templates: they parse, and rendering reaches the runtime's corners.
            let mut s = String::new();
            gen_block(&mut rng, &mut s, 0);
            s.into_bytes()
        } else if kind < 6 {
            let mut s = String::new();
            for _ in 0..rng.below(40) {
                s.push_str(rng.pick_str(JINJA));
            }
            s.into_bytes()
        } else {
            rng.pick(&self.sources).clone().into_bytes()
        };
        let edits = if kind < 5 {
            rng.below(2)
        } else {
            1 + rng.below(3)
        };
        for _ in 0..edits {
            let at = rng.below(src.len() + 1);
            match rng.below(4) {
                0 => {
                    let f = rng.pick(JINJA).as_bytes().to_vec();
                    src.splice(at..at, f);
                }
                _ => mutate_bytes(&mut rng, &mut src),
            }
        }
        let src = String::from_utf8_lossy(&src).into_owned();
        let roles = [
            "system",
            "user",
            "assistant",
            "tool",
            "developer",
            "",
            "{{ x }}",
        ];
        let msgs = (0..rng.below(5))
            .map(|_| {
                let role = rng.pick(&roles).to_string();
                let content = if rng.chance(1, 3) {
                    rng.pick(JINJA).to_string()
                } else {
                    String::from_utf8_lossy(&random_text(&mut rng, 40)).into_owned()
                };
                Message::new(role, content)
            })
            .collect();
        (src, msgs, rng.chance(1, 2))
    }
}

// ---------------------------------------------------------------------------------------------
// Request bodies.

const BODIES: &[&str] = &[
    r#"{"model": "nib", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0.7,
        "top_p": 0.9, "top_k": 40, "min_p": 0.05, "seed": 42, "stop": ["\n", "The"],
        "stream": false, "logprobs": 2, "presence_penalty": 0.1, "frequency_penalty": 0.2,
        "repeat_penalty": 1.1, "repeat_last_n": 64, "logit_bias": {"42": -100, "7": 2.5}, "n": 1}"#,
    r#"{"model": "nib", "messages": [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "!"}]},
        {"role": "assistant", "content": "Hello"}, {"role": "developer", "content": "x"}],
        "max_completion_tokens": 8, "stream": true, "stream_options": {"include_usage": true},
        "response_format": {"type": "text"}, "user": "u", "best_of": 1, "echo": false, "suffix": ""}"#,
    r#"{"prompt": [1, 2, 3, 49152, 0], "n_predict": -1}"#,
    r#"{"prompt": [[1, 2], [3]], "stop": "x", "tools": [], "logprobs": true}"#,
];

const KEYS: &[&str] = &[
    "model",
    "prompt",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "n_predict",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "repeat_last_n",
    "logit_bias",
    "n",
    "best_of",
    "echo",
    "suffix",
    "tools",
    "response_format",
    "user",
    "role",
    "content",
    "type",
    "text",
    "include_usage",
];

fn random_json(rng: &mut Rng, depth: usize) -> serde_json::Value {
    use serde_json::Value;
    match rng.below(if depth > 3 { 4 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(1, 2)),
        2 => {
            let f = *rng.pick(&[
                0.0,
                -0.0,
                -1.0,
                0.5,
                1e308,
                -1e308,
                5e-324,
                2147483648.0,
                9.3e18,
                1.8446744073709552e19,
            ]);
            if rng.chance(1, 2) {
                serde_json::json!(f)
            } else {
                let i = *rng.pick(&EXTREMES);
                if rng.chance(1, 2) {
                    serde_json::json!(i)
                } else {
                    serde_json::json!(i as i64)
                }
            }
        }
        3 => Value::String(String::from_utf8_lossy(&random_text(rng, 30)).into_owned()),
        4 | 5 => Value::Array(
            (0..rng.below(5))
                .map(|_| random_json(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(5))
                .map(|_| (rng.pick(KEYS).to_string(), random_json(rng, depth + 1)))
                .collect(),
        ),
    }
}

/// Replace, delete or add at a random place in `v`.
fn mutate_json(rng: &mut Rng, v: &mut serde_json::Value, depth: usize) {
    use serde_json::Value;
    match v {
        Value::Object(o) if !o.is_empty() && rng.chance(3, 4) => {
            let keys: Vec<String> = o.keys().cloned().collect();
            let k = rng.pick(&keys).clone();
            match rng.below(4) {
                0 => {
                    o.remove(&k);
                }
                1 => {
                    o.insert(rng.pick(KEYS).to_string(), random_json(rng, depth));
                }
                _ => mutate_json(rng, o.get_mut(&k).unwrap(), depth + 1),
            }
        }
        Value::Array(a) if !a.is_empty() && rng.chance(3, 4) => {
            let i = rng.below(a.len());
            if rng.chance(1, 4) {
                a.remove(i);
            } else {
                mutate_json(rng, &mut a[i], depth + 1);
            }
        }
        _ => *v = random_json(rng, depth),
    }
}

fn request_case(seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut v: serde_json::Value = serde_json::from_str(rng.pick_str(BODIES)).unwrap();
    for _ in 0..1 + rng.below(4) {
        mutate_json(&mut rng, &mut v, 0);
    }
    let mut body = serde_json::to_vec(&v).unwrap();
    match rng.below(8) {
        0 => {
            for _ in 0..1 + rng.below(3) {
                mutate_bytes(&mut rng, &mut body);
            }
        }
        1 => {
            // Deep nesting (serde_json stops at 128 levels).
            let n = 1 + rng.below(5000);
            body = format!("{{\"prompt\": {}1{}}}", "[".repeat(n), "]".repeat(n)).into_bytes();
        }
        _ => {}
    }
    body
}

fn parse_request(body: &[u8]) {
    use nib::serve::request::{parse_gen, parse_messages, parse_object, parse_prompt};
    if let Ok(o) = parse_object(body) {
        let _ = parse_gen(&o);
        let _ = parse_prompt(&o);
        let _ = parse_messages(&o);
    }
}

// ---------------------------------------------------------------------------------------------
// Reproducers: named cases, kept as regression tests whatever the random streams do.

/// One named mutation of SmolLM2's file, or a template.
#[derive(Clone, Copy, Debug)]
enum Repro {
    /// Set an integer metadata value (in its own width).
    Kv(&'static str, u64),
    /// Remove a metadata entry.
    DropKv(&'static str),
    /// Drop an array's last element (a consistent array, one entry short).
    CutArray(&'static str),
    /// Set a tensor's type id.
    TensorType(&'static str, u32),
    /// Set one of a tensor's dimensions.
    TensorDim(&'static str, usize, u64),
    /// Set a tensor's data offset.
    TensorOffset(&'static str, u64),
    /// Set the header's tensor count (8) or metadata count (16).
    Count(usize, u64),
    /// Render this chat template.
    Template(&'static str),
}

/// Each was a failure of the harness or is a corner it must keep covering; the one matching
/// [`KNOWN`] still fails.
const REPRODUCERS: &[Repro] = &[
    Repro::Kv("llama.block_count", u32::MAX as u64),
    Repro::Kv("llama.block_count", (u32::MAX - 1) as u64),
    Repro::Kv("llama.rope.dimension_count", 0),
    Repro::Template(
        "{% for i in range(99999) %}{% for j in range(99999) %}{{ j }}{% endfor %}{% endfor %}",
    ),
    // A namespace holding itself: printing it recursed until the stack overflowed (an abort).
    Repro::Template("{% set ns = namespace(n=0) %}{% set ns.n = ns %}{{ ns.n }}"),
    Repro::Kv("llama.block_count", 0),
    Repro::Kv("llama.block_count", 31),
    Repro::Kv("llama.embedding_length", 0),
    Repro::Kv("llama.embedding_length", u32::MAX as u64),
    Repro::Kv("llama.feed_forward_length", 0),
    Repro::Kv("llama.attention.head_count", 0),
    Repro::Kv("llama.attention.head_count", 7),
    Repro::Kv("llama.attention.head_count_kv", 0),
    Repro::Kv("llama.attention.head_count_kv", 5),
    Repro::Kv("llama.context_length", 0),
    Repro::Kv("llama.rope.dimension_count", u32::MAX as u64),
    Repro::Kv("llama.vocab_size", u32::MAX as u64),
    Repro::Kv("tokenizer.ggml.bos_token_id", u32::MAX as u64),
    Repro::Kv("tokenizer.ggml.eos_token_id", 49152),
    Repro::Kv("tokenizer.ggml.add_bos_token", 7),
    Repro::DropKv("general.architecture"),
    Repro::DropKv("llama.attention.layer_norm_rms_epsilon"),
    Repro::DropKv("tokenizer.ggml.merges"),
    Repro::CutArray("tokenizer.ggml.tokens"),
    Repro::CutArray("tokenizer.ggml.token_type"),
    Repro::CutArray("tokenizer.ggml.merges"),
    Repro::TensorType("token_embd.weight", 255),
    Repro::TensorType("blk.0.attn_q.weight", 0),
    Repro::TensorType("blk.0.attn_q.weight", 39),
    Repro::TensorDim("token_embd.weight", 1, u64::MAX),
    Repro::TensorDim("blk.0.ffn_down.weight", 0, 1 << 32),
    Repro::TensorDim("output_norm.weight", 0, 0),
    Repro::TensorOffset("blk.0.attn_k.weight", u64::MAX),
    Repro::TensorOffset("blk.0.attn_k.weight", 1),
    Repro::Count(8, u64::MAX),
    Repro::Count(16, u64::MAX),
    Repro::Count(16, 1 << 31),
];

/// Apply `r` to the header of SmolLM2's file.
fn apply_repro(r: Repro, head: &mut Vec<u8>) {
    let l = walk(head).unwrap();
    let kv = |key: &str| {
        l.kvs
            .iter()
            .find(|k| k.key == key)
            .unwrap_or_else(|| panic!("no {key} in the file"))
            .clone()
    };
    let tensor = |name: &str| {
        l.tensors
            .iter()
            .find(|t| &head[t.name_at + 8..t.name_at + 8 + t.name_len] == name.as_bytes())
            .unwrap_or_else(|| panic!("no tensor {name} in the file"))
            .clone()
    };
    match r {
        Repro::Kv(key, v) => {
            let k = kv(key);
            let size = scalar_size(k.ty).unwrap();
            head[k.value_at..k.value_at + size].copy_from_slice(&v.to_le_bytes()[..size]);
        }
        Repro::DropKv(key) => {
            let k = kv(key);
            head.drain(k.start..k.end);
            let n = rd_u64(head, 16).unwrap();
            wr_u64(head, 16, n - 1);
        }
        Repro::CutArray(key) => {
            let k = kv(key);
            let (_, n, last) = k.array.unwrap();
            wr_u64(head, k.value_at + 4, n - 1);
            head.drain(last..k.end);
        }
        Repro::TensorType(name, v) => {
            let t = tensor(name);
            wr_u32(head, t.type_at, v);
        }
        Repro::TensorDim(name, j, v) => {
            let t = tensor(name);
            wr_u64(head, t.dims_at[j], v);
        }
        Repro::TensorOffset(name, v) => {
            let t = tensor(name);
            wr_u64(head, t.offset_at, v);
        }
        Repro::Count(at, v) => wr_u64(head, at, v),
        Repro::Template(_) => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------------------
// The child: runs cases of one target, reporting each on stdout.

/// A target's state, loaded once per child process.
enum Base {
    Gguf(GgufBase),
    Tok(TokBase),
    Template(TemplateBase),
    Request,
    Repro(GgufBase),
}

impl Base {
    fn new(target: &str) -> Base {
        match target {
            "gguf-smollm2" => Base::Gguf(GgufBase::new(common::SMOLLM2)),
            "gguf-gemma3" => Base::Gguf(GgufBase::new(common::GEMMA3)),
            "tokenizer" => Base::Tok(TokBase::new()),
            "template" => Base::Template(TemplateBase::new()),
            "request" => Base::Request,
            "repro" => Base::Repro(GgufBase::new(common::SMOLLM2)),
            _ => panic!("unknown fuzz target {target}"),
        }
    }

    /// The description of case `seed`, and the closure that runs it.
    fn case(&self, seed: u64) -> (String, Box<dyn FnOnce() + '_>) {
        match self {
            Base::Gguf(b) => {
                let (file, desc, interleave) = b.case(seed);
                (
                    format!("{desc} (interleave {interleave})"),
                    Box::new(move || load_and_eval(file, interleave)),
                )
            }
            Base::Tok(b) => {
                let (text, which, add, parse, desc) = b.case(seed);
                (
                    desc,
                    Box::new(move || b.run(seed, &text, which, add, parse)),
                )
            }
            Base::Template(b) => {
                let (src, msgs, gen) = b.case(seed);
                let shown: String = src.chars().take(120).collect();
                (
                    format!(
                        "template {shown:?}… ({} bytes), {} messages",
                        src.len(),
                        msgs.len()
                    ),
                    Box::new(move || {
                        if let Ok(t) = ChatTemplate::new("fuzz", &src, "<s>", "</s>") {
                            let _ = t.render(&msgs, gen);
                        }
                    }),
                )
            }
            Base::Repro(b) => {
                let r = REPRODUCERS[seed as usize];
                let desc = format!("reproducer {r:?}");
                if let Repro::Template(src) = r {
                    return (
                        desc,
                        Box::new(move || {
                            let t = ChatTemplate::new("repro", src, "<s>", "</s>").unwrap();
                            let _ = t.render(&[Message::user("Hi")], true);
                        }),
                    );
                }
                let mut head = b.split.head.clone();
                apply_repro(r, &mut head);
                let file = b.split.assemble(&head, &b.file);
                (desc, Box::new(move || load_and_eval(file, true)))
            }
            Base::Request => {
                let body = request_case(seed);
                let shown: String = String::from_utf8_lossy(&body).chars().take(160).collect();
                (
                    format!("body {shown:?} ({} bytes)", body.len()),
                    Box::new(move || parse_request(&body)),
                )
            }
        }
    }
}

/// One line, whatever the text holds.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Run by the parent with `NIB_FUZZ_CHILD="TARGET FIRST END MASTER_SEED"`: cases FIRST..END.
/// Prints `@case I DESCRIPTION` before each case and `@ok I` or `@panic I MESSAGE` after.
#[test]
#[ignore = "run by the fuzz tests in a child process"]
fn fuzz_child() {
    let Ok(spec) = std::env::var("NIB_FUZZ_CHILD") else {
        eprintln!("fuzz_child runs cases for the fuzz tests: set NIB_FUZZ_CHILD");
        return;
    };
    let parts: Vec<&str> = spec.split_whitespace().collect();
    let (target, first, end, master): (&str, u64, u64, u64) = (
        parts[0],
        parts[1].parse().unwrap(),
        parts[2].parse().unwrap(),
        parts[3].parse().unwrap(),
    );
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        println!("@panicked at {at}: {}", one_line(&msg));
    }));
    let base = Base::new(target);
    println!("@ready");
    for i in first..end {
        let seed = match base {
            Base::Repro(_) => i,
            _ => case_seed(master, target, i),
        };
        let (desc, run) = base.case(seed);
        println!("@case {i} {}", one_line(&desc));
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(()) => println!("@ok {i}"),
            Err(_) => println!("@panic {i}"),
        }
    }
    println!("@done");
}

// ---------------------------------------------------------------------------------------------
// The parent.

/// How a case failed.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Panic(String),
    /// The child died (abort, signal): its status and the end of its stderr.
    Crash(String),
    Hang,
}

struct Failure {
    target: String,
    case: u64,
    desc: String,
    outcome: Outcome,
}

impl Failure {
    fn repro(&self, master: u64) -> String {
        format!(
            "NIB_FUZZ_CHILD='{} {} {} {master}' cargo test --release --test fuzz -- --exact fuzz_child --ignored --nocapture",
            self.target,
            self.case,
            self.case + 1
        )
    }
}

/// A case may take this long (the load of a model and three evaluations take well under 1 s).
const CASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Known failures, not fixed yet (remove each entry when it is): a failure whose target and
/// outcome kind match and whose description contains the text is reported as expected rather
/// than failing the test.
const KNOWN: &[(&str, &str, &str, &str)] = &[
    // (target prefix, outcome kind: panic|crash|hang|*, text in the description, why)
    (
        "repro",
        "crash",
        "set ns.n = ns",
        "a cyclic namespace overflows the stack when printed: found by this harness (seed 2, \
         case 82271), not fixed yet; remove when fixed",
    ),
];

fn outcome_kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::Panic(_) => "panic",
        Outcome::Crash(_) => "crash",
        Outcome::Hang => "hang",
    }
}

fn known(f: &Failure) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(t, kind, text, _)| {
            f.target.starts_with(t)
                && (*kind == "*" || *kind == outcome_kind(&f.outcome))
                && f.desc.contains(text)
        })
        .map(|k| k.3)
}

/// Run cases `first..end` of `target` in child processes: one child runs them in turn; where
/// one dies or hangs, a new child goes on after that case. The failures, and the cases run.
fn run_cases(target: &str, first: u64, end: u64, master: u64) -> (Vec<Failure>, usize) {
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut pos = first;
    while pos < end {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fuzz_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("NIB_FUZZ_CHILD", format!("{target} {pos} {end} {master}"))
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with('@') && tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let err_thread = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.read_to_end(&mut s);
            let s = s[s.len().saturating_sub(1500)..].to_vec();
            String::from_utf8_lossy(&s).into_owned()
        });
        let mut current: Option<(u64, String)> = None;
        let mut panicked: Option<String> = None;
        // Loading the base (a model read into memory) gets a longer allowance.
        let mut deadline = Instant::now() + CASE_TIMEOUT * 6;
        let mut fail = |case: u64, desc: String, outcome: Outcome| {
            failures.push(Failure {
                target: target.into(),
                case,
                desc,
                outcome,
            })
        };
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(line) => {
                    let mut it = line.splitn(3, ' ');
                    let tag = it.next().unwrap();
                    let num = it.next().and_then(|s| s.parse::<u64>().ok());
                    match tag {
                        "@case" => {
                            let desc = it.next().unwrap_or("").to_string();
                            current = Some((num.unwrap(), desc));
                            panicked = None;
                            deadline = Instant::now() + CASE_TIMEOUT;
                        }
                        "@ok" => {
                            ran += 1;
                            current = None;
                        }
                        "@panic" => {
                            ran += 1;
                            let (case, desc) = current.take().unwrap();
                            fail(
                                case,
                                desc,
                                Outcome::Panic(panicked.take().unwrap_or_default()),
                            );
                        }
                        "@panicked" => panicked = Some(line["@panicked ".len()..].to_string()),
                        "@done" => {
                            let _ = child.wait();
                            pos = end;
                            break;
                        }
                        _ => {}
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // SIGKILL to the child this function started (through its handle).
                    let _ = child.kill();
                    let _ = child.wait();
                    let Some((case, desc)) = current.take() else {
                        panic!("the fuzz child for {target} did not start in time");
                    };
                    ran += 1;
                    fail(case, desc, Outcome::Hang);
                    pos = case + 1;
                    break;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // The child died (or closed its output): the case under way is the culprit.
                    let status = child.wait().unwrap();
                    let stderr = err_thread.join().unwrap();
                    let Some((case, desc)) = current.take() else {
                        panic!(
                            "the fuzz child for {target} died outside a case ({status}): {} {stderr}",
                            panicked.unwrap_or_default()
                        );
                    };
                    ran += 1;
                    let tail = one_line(stderr.trim());
                    fail(case, desc, Outcome::Crash(format!("{status}: {tail}")));
                    pos = case + 1;
                    break;
                }
            }
        }
    }
    (failures, ran)
}

fn cases_for(default: u64) -> u64 {
    std::env::var("NIB_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Fuzz `target` for its case count, then report; fail on any failure not in [`KNOWN`].
fn fuzz(target: &str, default_cases: u64) {
    let n = cases_for(default_cases);
    let master = master_seed();
    let t0 = Instant::now();
    let (failures, ran) = run_cases(target, 0, n, master);
    report(target, &failures, ran, master, t0);
}

fn report(target: &str, failures: &[Failure], ran: usize, master: u64, t0: Instant) {
    let mut unexpected = Vec::new();
    let mut expected = 0;
    for f in failures {
        let line = format!(
            "{} case {}: {:?}\n    mutation: {}\n    repeat: {}",
            f.target,
            f.case,
            f.outcome,
            f.desc,
            f.repro(master)
        );
        match known(f) {
            Some(why) => {
                expected += 1;
                eprintln!("known failure ({why}): {line}");
            }
            None => unexpected.push(line),
        }
    }
    eprintln!(
        "fuzz {target}: {ran} cases run in {:.1} s (seed {master}), {} failures: {expected} known, {} new",
        t0.elapsed().as_secs_f64(),
        failures.len(),
        unexpected.len()
    );
    assert!(
        unexpected.is_empty(),
        "fuzz {target}: {} new failures:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

/// The named reproducers ([`REPRODUCERS`]), each in a child like the fuzz cases.
#[test]
fn fuzz_reproducers() {
    let t0 = Instant::now();
    let (failures, ran) = run_cases("repro", 0, REPRODUCERS.len() as u64, 0);
    report("repro", &failures, ran, 0, t0);
}

#[test]
fn fuzz_gguf_smollm2() {
    fuzz("gguf-smollm2", 150);
}

#[test]
fn fuzz_gguf_gemma3() {
    fuzz("gguf-gemma3", 60);
}

#[test]
fn fuzz_tokenizer() {
    fuzz("tokenizer", 5000);
}

#[test]
fn fuzz_chat_template() {
    fuzz("template", 20000);
}

#[test]
fn fuzz_request() {
    fuzz("request", 20000);
}
