//! Re-quantizing a model as `llama-quantize` does for the whole-tensor formats (Q4_0, Q4_1,
//! Q5_0, Q5_1, Q8_0, F16, BF16, F32): the same choice of type per tensor, the same tensor order
//! and metadata, and ggml's reference quantizers, so the output is byte for byte the file
//! `llama-quantize --allow-requantize IN OUT TYPE` writes (checked in tests by sha256).
//!
//! Per tensor: only 2-D (and larger) `*weight` tensors that are not norms are converted. The
//! output projection (and the token embedding when it doubles as the output) gets Q8_0 when the
//! target is Q8_0, otherwise Q6_K, falling back to Q8_0 when its rows are not a multiple of 256
//! (llama.cpp's rule; nib writes Q6_K with ggml's reference search too). A tensor already of the
//! chosen type is copied unchanged; others are dequantized to f32 and quantized.

use crate::gguf::{Gguf, GgufWriter};
use anyhow::{anyhow, bail, Context as _, Result};
use nib_simd::GgmlType;
use rayon::prelude::*;
use std::io::{BufWriter, Write};
use std::path::Path;

/// `general.file_type` of each target (llama.cpp's `llama_ftype`).
pub fn file_type_of(target: GgmlType) -> Result<u32> {
    match target {
        GgmlType::F32
        | GgmlType::F16
        | GgmlType::Q4_0
        | GgmlType::Q4_1
        | GgmlType::Q8_0
        | GgmlType::Q5_0
        | GgmlType::Q5_1
        | GgmlType::BF16 => Ok(crate::gguf::file_type_of(target).expect("a whole-file type")),
        other => bail!(
            "nib quantize supports Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16, BF16 and F32, not {other}"
        ),
    }
}

/// llama.cpp's tensor order for writing: by layer number (tensors outside `blk.N.` first), then
/// by name.
fn tensor_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn layer(n: &str) -> i64 {
        n.strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|d| d.parse().ok())
            .unwrap_or(-1)
    }
    layer(a).cmp(&layer(b)).then_with(|| a.cmp(b))
}

/// The type llama-quantize gives a tensor for a whole-tensor target format.
fn target_type(name: &str, ty: GgmlType, dims: &[u64], target: GgmlType, tied: bool) -> GgmlType {
    let quantizable = dims.len() >= 2
        && name.ends_with("weight")
        && !name.contains("_norm.weight")
        && !name.contains("ffn_gate_inp.weight")
        && !name.contains("pos_embd")
        && !name.contains("token_types");
    if !quantizable {
        return ty;
    }
    let cols = dims[0];
    let is_output = name == "output.weight" || (tied && name == "token_embd.weight");
    if is_output && target.is_quantized() {
        if !cols.is_multiple_of(target.block_size() as u64) || target == GgmlType::Q8_0 {
            return GgmlType::Q8_0;
        }
        // Q6_K, or Q8_0 when the rows do not divide into 256-element super-blocks.
        return if cols.is_multiple_of(256) {
            GgmlType::Q6_K
        } else {
            GgmlType::Q8_0
        };
    }
    if !cols.is_multiple_of(target.block_size() as u64) {
        // Shapes a 32-element format cannot hold stay in a float format.
        return GgmlType::F16;
    }
    target
}

/// Write `input` re-quantized to `target` into `output`. `allow_requantize` permits converting
/// tensors that are already quantized (as llama-quantize's `--allow-requantize`).
pub fn quantize_file(
    input: &Path,
    output: &Path,
    target: GgmlType,
    allow_requantize: bool,
) -> Result<()> {
    let g = Gguf::open(input)?;
    let ftype = file_type_of(target)?;
    let tied = g.tensor_info("output.weight").is_none();

    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        if k == "general.quantization_version" || k == "general.file_type" {
            continue;
        }
        w.set(k, g.to_owned_value(v))?;
    }
    // llama.cpp sets these last (removing and re-adding the keys).
    w.set(
        "general.quantization_version",
        crate::gguf::MetaValue::U32(2),
    )?;
    w.set("general.file_type", crate::gguf::MetaValue::U32(ftype))?;

    let mut order: Vec<_> = g.tensors().iter().collect();
    order.sort_by(|a, b| tensor_order(&a.name, &b.name));
    let plan: Vec<(usize, GgmlType)> = order
        .iter()
        .map(|t| {
            let new_ty = target_type(&t.name, t.ty, &t.dims, target, tied);
            if new_ty != t.ty && t.ty.is_quantized() && !allow_requantize {
                bail!(
                    "tensor {:?} is already quantized ({}); pass --allow-requantize to convert it to {new_ty}",
                    t.name,
                    t.ty
                );
            }
            w.add_tensor_info(&t.name, new_ty, &t.dims)?;
            Ok((g.tensors().iter().position(|x| x.name == t.name).unwrap(), new_ty))
        })
        .collect::<Result<_>>()?;

    let file =
        std::fs::File::create(output).with_context(|| format!("creating {}", output.display()))?;
    let mut f = BufWriter::with_capacity(1 << 22, file);
    w.write_header(&mut f)?;
    let k = nib_simd::kernels();
    for (i, &(src, new_ty)) in plan.iter().enumerate() {
        let t = &g.tensors()[src];
        let data = g.tensor_data(t);
        if new_ty == t.ty {
            w.write_tensor_data(&mut f, i, data)?;
            continue;
        }
        let to_float = k
            .get(t.ty)
            .and_then(|tr| tr.to_float)
            .ok_or_else(|| anyhow!("tensor {:?}: nib cannot read {}", t.name, t.ty))?;
        let quantize = nib_simd::formats::weight_quantizer(new_ty)
            .ok_or_else(|| anyhow!("tensor {:?}: nib cannot write {new_ty}", t.name))?;
        let cols = t.dims[0] as usize;
        let rows = t.n_rows() as usize;
        let (in_rb, out_rb) = (t.ty.row_size(cols).unwrap(), new_ty.row_size(cols).unwrap());
        let mut out = vec![0u8; out_rb * rows];
        out.par_chunks_mut(out_rb).enumerate().for_each(|(r, o)| {
            let mut x = vec![0f32; cols];
            to_float(&data[r * in_rb..(r + 1) * in_rb], &mut x);
            quantize(&x, o);
        });
        w.write_tensor_data(&mut f, i, &out)?;
    }
    f.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_are_ordered_by_layer_then_name() {
        let mut v = vec![
            "blk.10.a",
            "blk.2.b",
            "token_embd.weight",
            "blk.2.a",
            "output_norm.weight",
        ];
        v.sort_by(|a, b| tensor_order(a, b));
        assert_eq!(
            v,
            [
                "output_norm.weight",
                "token_embd.weight",
                "blk.2.a",
                "blk.2.b",
                "blk.10.a"
            ]
        );
    }

    #[test]
    fn output_types_follow_llama_quantize() {
        let t = |name: &str, cols: u64, target| {
            target_type(name, GgmlType::F16, &[cols, 8], target, true)
        };
        assert_eq!(t("token_embd.weight", 576, GgmlType::Q4_0), GgmlType::Q8_0);
        assert_eq!(t("token_embd.weight", 2048, GgmlType::Q4_0), GgmlType::Q6_K);
        assert_eq!(t("token_embd.weight", 2048, GgmlType::Q8_0), GgmlType::Q8_0);
        assert_eq!(
            t("blk.0.attn_q.weight", 576, GgmlType::Q4_0),
            GgmlType::Q4_0
        );
        assert_eq!(
            target_type(
                "blk.0.attn_norm.weight",
                GgmlType::F32,
                &[576],
                GgmlType::Q4_0,
                true
            ),
            GgmlType::F32
        );
    }
}
