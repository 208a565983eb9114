//! nib's conversions against the Python reference, the `gguf` package (0.19) that
//! `convert_hf_to_gguf.py` and llama.cpp's tooling use:
//!
//! * dequantization of real tensors of both test models (every quantized type they hold:
//!   Q4_1, Q8_0, Q5_0, Q4_K, Q6_K), at every kernel level this CPU supports, bit for bit;
//! * quantization of random rows to Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16 and BF16, byte for byte.
//!
//! Needs the models (`NIB_MODELS`, default `<repo>/models`; `tools/fetch-models.sh` fetches them)
//! and a Python with `gguf` (`NIB_PYTHON`, default `python3`; `tools/test.sh` makes a venv). When
//! either is missing the tests fail and say how to get it.

mod common;

use common::Scratch;
use nib::gguf::Gguf;
use nib_simd::formats::weight_quantizer;
use nib_simd::testing::Rng;
use nib_simd::GgmlType;
use nib_simd::{Kernels, Level};
use std::process::Command;

const MODELS: [&str; 2] = [
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma-3-270m-q4_k_m.gguf",
];

/// Rows checked per tensor, spread over the tensor.
const ROWS: u64 = 12;

/// The types whose tensors in the test models are dequantized and compared.
const DEQUANTIZED: [GgmlType; 5] = [
    GgmlType::Q4_1,
    GgmlType::Q8_0,
    GgmlType::Q5_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
];
/// Reads the job list (one `op TYPE rows input output` per line) and runs each through
/// `gguf.quants`, writing raw little-endian results.
const SCRIPT: &str = r#"
import sys
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

for line in open(sys.argv[1]):
    op, ty, rows, src, dst = line.split()
    t, rows = T[ty], int(rows)
    if op == "dequantize":
        out = dequantize(np.fromfile(src, dtype=np.uint8).reshape(rows, -1), t)
    else:
        out = quantize(np.fromfile(src, dtype=np.float32).reshape(rows, -1), t)
    np.ascontiguousarray(out).tofile(dst)
"#;

fn model(name: &str) -> Gguf {
    let path = common::model_path(name);
    Gguf::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One conversion for Python to do.
struct Job {
    op: &'static str,
    ty: GgmlType,
    rows: usize,
    input: Vec<u8>,
}

/// Runs the jobs through Python's `gguf.quants` and returns each job's output bytes.
fn run_python(scratch: &Scratch, jobs: &[Job]) -> Vec<Vec<u8>> {
    let py = common::python_with_gguf();
    let mut manifest = String::new();
    for (i, job) in jobs.iter().enumerate() {
        let (src, dst) = (
            scratch.path(&format!("in{i}")),
            scratch.path(&format!("out{i}")),
        );
        std::fs::write(&src, &job.input).unwrap();
        let name = job.ty.name().to_ascii_uppercase();
        manifest += &format!(
            "{} {name} {} {} {}\n",
            job.op,
            job.rows,
            src.display(),
            dst.display()
        );
    }
    let list = scratch.path("jobs.txt");
    std::fs::write(&list, manifest).unwrap();
    let script = scratch.path("reference.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = Command::new(&py).arg(&script).arg(&list).output().unwrap();
    common::assert_success("the Python reference", &out);
    (0..jobs.len())
        .map(|i| std::fs::read(scratch.path(&format!("out{i}"))).unwrap())
        .collect()
}

fn supported_levels() -> Vec<Level> {
    Level::ALL
        .into_iter()
        .filter(|l| l.is_supported())
        .collect()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn dequantize_matches_gguf_py_on_real_tensors() {
    let scratch = Scratch::new("dequant");
    // (model, tensor, rows as bytes, row length), then the Python jobs in the same order.
    let mut cases = vec![];
    let mut jobs = vec![];
    for name in MODELS {
        let g = model(name);
        // Per type: the first and the last tensor of that type in the file.
        let mut picks: Vec<(GgmlType, &str)> = vec![];
        for ty in DEQUANTIZED {
            let of_type: Vec<&str> = g
                .tensors()
                .iter()
                .filter(|t| t.ty == ty)
                .map(|t| t.name.as_str())
                .collect();
            if let (Some(first), Some(last)) = (of_type.first(), of_type.last()) {
                picks.push((ty, first));
                if last != first {
                    picks.push((ty, last));
                }
            }
        }
        for (ty, tensor) in picks {
            let (info, data) = g.tensor(tensor).unwrap();
            let row_bytes = ty.row_size(info.n_cols() as usize).unwrap();
            let n_rows = info.n_rows();
            let rows: Vec<u64> = (0..ROWS.min(n_rows))
                .map(|i| i * n_rows / ROWS.min(n_rows))
                .collect();
            let mut bytes = vec![];
            for &r in &rows {
                let start = r as usize * row_bytes;
                bytes.extend_from_slice(&data[start..start + row_bytes]);
            }
            jobs.push(Job {
                op: "dequantize",
                ty,
                rows: rows.len(),
                input: bytes.clone(),
            });
            cases.push((
                name,
                tensor.to_string(),
                ty,
                bytes,
                info.n_cols() as usize,
                rows.len(),
            ));
        }
    }
    let seen: Vec<GgmlType> = cases.iter().map(|c| c.2).collect();
    for ty in DEQUANTIZED {
        assert!(
            seen.contains(&ty),
            "no {ty} tensor found in the test models"
        );
    }
    let want = run_python(&scratch, &jobs);
    for level in supported_levels() {
        let k = Kernels::for_level(level);
        for ((model, tensor, ty, bytes, cols, rows), want) in cases.iter().zip(&want) {
            let want = f32s(want);
            assert_eq!(
                want.len(),
                cols * rows,
                "{model} {tensor}: Python returned {} values",
                want.len()
            );
            let to_float = k.get(*ty).unwrap().to_float.unwrap();
            let row_bytes = bytes.len() / rows;
            // Row by row, as nib dequantizes embedding rows.
            for (r, (src, want)) in bytes
                .chunks_exact(row_bytes)
                .zip(want.chunks_exact(*cols))
                .enumerate()
            {
                let mut got = vec![0f32; *cols];
                to_float(src, &mut got);
                if let Some(i) = (0..*cols).find(|&i| got[i].to_bits() != want[i].to_bits()) {
                    panic!(
                        "{level} {model} {tensor} ({ty}) row {r} element {i}: nib {} vs gguf-py {}",
                        got[i], want[i]
                    );
                }
            }
        }
    }
}

/// Rows of 256 with one shape per row: Gaussian-like at several scales, uniform, outliers,
/// exact ties at the quantization steps, zeros, constants, both signs of the largest magnitude,
/// values beyond f16's range and below its subnormals.
fn random_rows(rows: usize, rng: &mut Rng) -> Vec<f32> {
    let mut x = Vec::with_capacity(rows * 256);
    for r in 0..rows {
        for i in 0..256 {
            let g = rng.f32() + rng.f32() + rng.f32();
            x.push(match r % 10 {
                0 => g * 0.02,
                1 => g * 30.0,
                2 => rng.f32(),
                3 => g * if i % 97 == 5 { 50.0 } else { 1.0 },
                // Multiples of 1/2 and 1/4: ties in trunc(x/d + 0.5) and round(x/d).
                4 => ((rng.next_u64() % 33) as f32 - 16.0) * 0.5,
                5 => ((rng.next_u64() % 255) as f32 - 127.0) * 0.25,
                6 => 0.0,
                7 => 1.75,
                8 => match i % 32 {
                    3 => -3.0,
                    11 => 3.0,
                    _ => g,
                },
                _ => g * if i % 2 == 0 { 1e6 } else { 1e-9 },
            });
        }
    }
    x
}

#[test]
fn quantize_matches_gguf_py_byte_for_byte() {
    let scratch = Scratch::new("quant");
    let mut rng = Rng(0x6a09_e667_f3bc_c908);
    let rows = 40;
    let x = random_rows(rows, &mut rng);
    let input: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    use GgmlType::*;
    let types = [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16, BF16];
    let jobs: Vec<Job> = types
        .iter()
        .map(|&ty| Job {
            op: "quantize",
            ty,
            rows,
            input: input.clone(),
        })
        .collect();
    let want = run_python(&scratch, &jobs);
    for level in supported_levels() {
        let k = Kernels::for_level(level);
        for (&ty, want) in types.iter().zip(&want) {
            // The weight quantizers, and for F16/BF16 also each level's conversion.
            let from_float = match ty {
                F16 | BF16 => k.get(ty).unwrap().from_float.unwrap(),
                _ => weight_quantizer(ty).unwrap(),
            };
            let row_bytes = ty.row_size(256).unwrap();
            assert_eq!(
                want.len(),
                rows * row_bytes,
                "{ty}: Python returned {} bytes",
                want.len()
            );
            for (r, (xs, want)) in x
                .chunks_exact(256)
                .zip(want.chunks_exact(row_bytes))
                .enumerate()
            {
                let mut got = vec![0u8; row_bytes];
                from_float(xs, &mut got);
                if let Some(i) = (0..row_bytes).find(|&i| got[i] != want[i]) {
                    let block = i / ty.type_size();
                    panic!("{level} {ty} row {r} (shape {}) byte {i} (block {block}) differs from gguf-py", r % 10);
                }
            }
        }
    }
}
