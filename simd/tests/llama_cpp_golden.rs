//! nib's reference kernels against stored outputs of llama.cpp's x86 CPU backend (AVX-512 build,
//! 2 threads), bit for bit: activation quantization and dot products per weight format, matmuls
//! per format and batch size (llamafile's tinyBLAS, the tiled K-quant matmul, the repacked Q4_0
//! and Q4_K layouts), RMSNorm, SwiGLU and GeGLU (all 65,536 f16 inputs of its GELU table).
//!
//! The inputs and llama.cpp's outputs live in `tests/golden/kernels/` (see `common/records.rs`).
//! Every level this CPU supports is checked (they must all give llama.cpp's bits);
//! `NIB_GOLDEN_LEVELS=scalar` (or any comma-separated list of level names) checks only those.

#[path = "common/records.rs"]
mod records;

use nib_simd::{vec, GgmlType};
use nib_simd::{Kernels, Level};
use records::{files, golden_dir, same, Records};
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    golden_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn levels() -> Vec<Level> {
    let supported = Level::ALL.into_iter().filter(|l| l.is_supported());
    match std::env::var("NIB_GOLDEN_LEVELS") {
        Ok(names) if !names.trim().is_empty() => {
            let want: Vec<Level> = names
                .split(',')
                .map(|n| Level::from_name(n).unwrap_or_else(|| panic!("unknown level {n}")))
                .collect();
            supported.filter(|l| want.contains(l)).collect()
        }
        _ => supported.collect(),
    }
}

fn ty(r: &Records) -> GgmlType {
    let id = r.int("type");
    GgmlType::from_id(id as u32).unwrap_or_else(|| panic!("ggml type {id}"))
}

/// Whether `check` passes for every record `prefix*` at every level, with the level's kernels
/// `kernels(level)` (`check` prints what differs).
fn at_each_level(
    prefix: &str,
    kernels: impl Fn(Level) -> Kernels,
    mut check: impl FnMut(Level, &Kernels, &Records) -> bool,
) -> bool {
    let mut ok = true;
    for level in levels() {
        let k = kernels(level);
        for r in files(&dir(), prefix) {
            ok &= check(level, &k, &r);
        }
    }
    ok
}

#[test]
fn activation_quantization_and_vec_dot_match_llama_cpp() {
    let ok = at_each_level("vecdot_", Kernels::for_level, |level, k, r| {
        let t = ty(r);
        let (n, rows) = (r.int("k"), r.int("rows"));
        let tr = k.get(t).unwrap();
        let at = tr.vec_dot_type;
        let (wb, ab) = (t.row_size(n).unwrap(), at.row_size(n).unwrap());
        let x = r.f32s("x");
        let mut xq = vec![0u8; ab * rows];
        for (o, xi) in xq.chunks_exact_mut(ab).zip(x.chunks_exact(n)) {
            (k.get(at).unwrap().from_float.unwrap())(xi, o);
        }
        let xq_ok = xq == r.bytes("xq");
        if !xq_ok {
            eprintln!(
                "{level} {}: {at} activations differ from llama.cpp's",
                r.name()
            );
        }
        let (w, xq) = (r.bytes("w"), r.bytes("xq"));
        let mut got = vec![0f32; rows * rows];
        for i in 0..rows {
            for j in 0..rows {
                got[i * rows + j] = (tr.dot(nib_simd::Order::Vec).unwrap())(
                    n,
                    &w[i * wb..][..wb],
                    &xq[j * ab..][..ab],
                );
            }
        }
        let name = format!("{level} {} ({t} vec_dot)", r.name());
        same(&name, &got, &r.f32s("out")) && xq_ok
    });
    assert!(ok, "some dot products differ from llama.cpp's");
}

#[test]
fn matmul_matches_llama_cpp_at_each_batch_size() {
    // llama.cpp's x86 orders (the aarch64 levels choose their own otherwise).
    let kernels = |level| Kernels::for_level(level).with_llama_orders();
    let ok = at_each_level("matmul_", kernels, |level, k, r| {
        let t = ty(r);
        let (n, m, toks) = (r.int("k"), r.int("m"), r.int("n"));
        let at = k.get(t).unwrap().vec_dot_type;
        let mut act = vec![0u8; at.row_size(n).unwrap() * toks];
        nib_simd::quantize_rows(k, at, &r.f32s("x"), n, toks, &mut act);
        let w = nib_simd::MatRef::new(t, m, n, r.bytes("w"));
        let mut got = vec![0f32; m * toks];
        nib_simd::matmul(k, w, &act, toks, &mut got);
        let name = format!("{level} {} ({t}, {m} rows, {toks} tokens)", r.name());
        same(&name, &got, &r.f32s("out"))
    });
    assert!(ok, "some matmuls differ from llama.cpp's");
}

#[test]
fn rms_norm_matches_llama_cpp() {
    let mut ok = true;
    for r in files(&dir(), "rmsnorm_") {
        let n = r.int("n");
        let (x, w) = (r.f32s("x"), r.f32s("w"));
        let mut got = vec![0f32; x.len()];
        for (o, xi) in got.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
            vec::rms_norm(xi, &w, r.float("eps"), o);
        }
        ok &= same(r.name(), &got, &r.f32s("out"));
    }
    assert!(ok);
}

/// FNV-1a over the bits of `v` (NaNs canonicalised), as the harness hashes the GeGLU sweep.
fn fnv(v: &[f32]) -> u64 {
    let mut h: u64 = 1469598103934665603;
    for x in v {
        let u = if x.is_nan() { 0x7fc0_0000 } else { x.to_bits() };
        for k in 0..4 {
            h ^= ((u >> (8 * k)) & 0xff) as u64;
            h = h.wrapping_mul(1099511628211);
        }
    }
    h
}

#[test]
fn swiglu_and_geglu_match_llama_cpp() {
    let mut ok = true;
    for r in files(&dir(), "glu_") {
        let n = r.int("n");
        let geglu = r.name().contains("geglu");
        if r.has("fnv") {
            // Every f16 value through GeGLU with up = 1: llama.cpp's whole GELU table.
            let mut a: Vec<f32> = (0..=u16::MAX)
                .map(|i| half::f16::from_bits(i).to_f32())
                .collect();
            vec::geglu_inplace(&mut a, &vec![1.0; 65536]);
            if fnv(&a) != r.u64("fnv") {
                eprintln!("{}: the GELU table differs from llama.cpp's", r.name());
                ok = false;
            }
            continue;
        }
        let (mut a, b) = (r.f32s("a"), r.f32s("b"));
        for (g, u) in a.chunks_exact_mut(n).zip(b.chunks_exact(n)) {
            if geglu {
                vec::geglu_inplace(g, u);
            } else {
                vec::swiglu_inplace(g, u);
            }
        }
        ok &= same(r.name(), &a, &r.f32s("out"));
    }
    assert!(ok);
}
