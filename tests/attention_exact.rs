//! nib's attention against stored outputs of llama.cpp's CPU flash attention (x86 AVX-512 build),
//! bit for bit, on each of its three paths: the vector path (head sizes 64 and 256, with a
//! sliding window), the tiled path (64 queries) and the split-KV decode path (512 cells, split
//! for 2 and 3 threads). Inputs and outputs are in `tests/golden/kernels/fa_*.bin`. Checked with
//! the kernels of every instruction set this CPU supports, the scalar reference
//! (`nib_simd::attn::scalar`) among them.
//!
//! Then the SIMD kernels against the scalar reference on random caches: every path, head sizes
//! 64/128/256 and odd ones, grouped heads, windows, a ring-like cell map, a softcap, bit for bit.

#[path = "../simd/tests/common/records.rs"]
mod records;

use half::f16;
use nib::model::kv_cache::{CellMap, KvBuf};
use nib::ops::attention::{self, attention_with, AttnParams, Cells, FaPath};
use nib_simd::testing::Rng;
use nib_simd::vec::{Isa, VecOps};
use records::{files, golden_dir, same};
use std::path::Path;

#[test]
fn flash_attention_matches_llama_cpp_on_every_path() {
    let mut ok = true;
    let mut paths = vec![];
    for r in files(&golden_dir(Path::new(env!("CARGO_MANIFEST_DIR"))), "fa_") {
        let (dk, dv, h, hkv, t) = (
            r.int("d"),
            r.int("dv"),
            r.int("h"),
            r.int("hkv"),
            r.int("t"),
        );
        let p = AttnParams {
            n_head: h,
            n_head_kv: hkv,
            head_dim: dk,
            head_dim_v: dv,
            pos0: r.int("pos0"),
            scale: r.float("scale"),
            window: r.int("win"),
            softcap: 0.0,
            n_kv: r.int("nkv"),
            kv_split: r.int("nth"),
            cells: Cells::Positions,
        };
        let (kc, vc) = (KvBuf::F16(r.f16s("k")), KvBuf::F16(r.f16s("v")));
        paths.push(p.path(t));
        for isa in Isa::supported() {
            let mut got = vec![0f32; t * h * dv];
            attention_with(
                VecOps::new(isa).unwrap(),
                &r.f32s("q"),
                &kc,
                &vc,
                t,
                p,
                &mut got,
            );
            ok &= same(
                &format!("{} ({:?} path, {isa})", r.name(), p.path(t)),
                &got,
                &r.f32s("out"),
            );
        }
    }
    for want in [FaPath::Vector, FaPath::Tiled, FaPath::SplitKv] {
        assert!(
            paths.contains(&want),
            "no golden exercises the {want:?} path"
        );
    }
    assert!(ok, "attention differs from llama.cpp's");
}

fn bits_equal(a: &[f32], b: &[f32]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()))
}

#[test]
fn simd_attention_matches_the_scalar_reference_on_random_caches() {
    let mut rng = Rng(0x5eed);
    let mut seen = vec![];
    // (head_dim, head_dim_v, n_head, n_head_kv)
    let shapes = [
        (64, 64, 9, 3),
        (128, 128, 4, 4),
        (256, 256, 4, 1),
        (72, 40, 6, 2),
        (16, 16, 2, 1),
    ];
    for (case, &(dk, dv, h, hkv)) in shapes.iter().cycle().take(40).enumerate() {
        // Batch sizes for every path: decode, short batches, tiled batches; starting positions
        // that put decode over 512+ cells (split-KV).
        let t: usize = [1, 1, 3, 17, 64, 70, 100, 1][case % 8];
        let pos0: usize = [5, 600, 0, 40, 0, 37, 130, 1000][case % 8];
        let end = pos0 + t;
        let size = end.div_ceil(256) * 256 + 256;
        let window = [0, 0, 7, 0, 50, 0, 64, 300][case % 8] * (case % 3).min(1);
        let softcap = if case % 5 == 4 { 20.0 } else { 0.0 };
        let kv_split = [2, 3, 2, 1][case % 4];
        // A ring-like placement (as llama.cpp's sliding-window cache) for some cases.
        let map: Option<Vec<u32>> = ((case / 8) % 2 == 1).then(|| {
            (0..size)
                .map(|c| {
                    if c < end && rng.below(7) != 0 {
                        ((c * 5 + 3) % end) as u32
                    } else {
                        CellMap::EMPTY
                    }
                })
                .collect()
        });
        let cells = match &map {
            Some(m) => Cells::Map(m),
            None => Cells::Positions,
        };
        let n_kv = attention::llama_n_kv(end, size);
        let p = AttnParams {
            n_head: h,
            n_head_kv: hkv,
            head_dim: dk,
            head_dim_v: dv,
            pos0,
            scale: 1.0 / (dk as f32).sqrt(),
            window,
            softcap,
            n_kv,
            kv_split,
            cells,
        };
        let kc: Vec<f16> = (0..size * hkv * dk)
            .map(|_| f16::from_f32(rng.f32() * 2.0))
            .collect();
        let vc: Vec<f16> = (0..size * hkv * dv)
            .map(|_| f16::from_f32(rng.f32()))
            .collect();
        let (kc, vc) = (KvBuf::F16(kc), KvBuf::F16(vc));
        let q: Vec<f32> = (0..t * h * dk).map(|_| rng.f32() * 3.0).collect();
        let mut want = vec![0f32; t * h * dv];
        attention_with(VecOps::scalar(), &q, &kc, &vc, t, p, &mut want);
        seen.push(p.path(t));
        for isa in Isa::supported().into_iter().filter(|&i| i != Isa::Scalar) {
            let mut got = vec![1f32; t * h * dv];
            attention_with(VecOps::new(isa).unwrap(), &q, &kc, &vc, t, p, &mut got);
            if let Some(i) = bits_equal(&got, &want) {
                panic!(
                    "case {case} ({:?} path, {isa}, d {dk}/{dv}, heads {h}/{hkv}, t {t}, pos0 {pos0}, \
                     window {window}, map {}): element {i}: {} vs reference {}",
                    p.path(t),
                    map.is_some(),
                    got[i],
                    want[i]
                );
            }
        }
    }
    for want in [FaPath::Vector, FaPath::Tiled, FaPath::SplitKv] {
        assert!(seen.contains(&want), "no case takes the {want:?} path");
    }
}
