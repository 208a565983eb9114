//! nib's attention against stored outputs of llama.cpp's CPU flash attention (x86 AVX-512 build),
//! bit for bit, on each of its three paths: the vector path (head sizes 64 and 256, with a
//! sliding window), the tiled path (64 queries) and the split-KV decode path (512 cells, split
//! for 2 and 3 threads). Inputs and outputs are in `tests/golden/kernels/fa_*.bin`.

#[path = "../simd/tests/common/records.rs"]
mod records;

use nib::model::kv_cache::KvBuf;
use nib::ops::attention::{attention, AttnParams, Cells, FaPath};
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
        let mut got = vec![0f32; t * h * dv];
        attention(&r.f32s("q"), &kc, &vc, t, p, &mut got);
        paths.push(p.path(t));
        ok &= same(
            &format!("{} ({:?} path)", r.name(), p.path(t)),
            &got,
            &r.f32s("out"),
        );
    }
    for want in [FaPath::Vector, FaPath::Tiled, FaPath::SplitKv] {
        assert!(
            paths.contains(&want),
            "no golden exercises the {want:?} path"
        );
    }
    assert!(ok, "attention differs from llama.cpp's");
}
