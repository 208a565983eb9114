//! The GGUF reader and writer: round trips, agreement with the Python reference reader
//! (`gguf==0.19.0`) on nib-written files and on both real models, and hostile input: a corpus of
//! malformed files that `nib inspect` must reject with a one-line error and exit code 1, plus a
//! bounded mutation fuzz of valid headers that must never panic.

mod common;

use common::{python_with_gguf, Scratch};
use nib::gguf::{Gguf, GgufWriter, MetaValue, Value, ValueType};
use nib_simd::testing::Rng;
use nib_simd::GgmlType;
use serde_json::Value as Json;
use std::path::Path;
use std::process::Command;

/// A file with every metadata value type and tensors of several types and shapes.
fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    let s = |w: &mut GgufWriter, k: &str, v: MetaValue| {
        w.set(k, v).unwrap();
    };
    s(&mut w, "general.architecture", MetaValue::str("llama"));
    s(&mut w, "general.name", MetaValue::str("nib test ✓ ünïcødé"));
    s(&mut w, "t.u8", MetaValue::U8(250));
    s(&mut w, "t.i8", MetaValue::I8(-120));
    s(&mut w, "t.u16", MetaValue::U16(65000));
    s(&mut w, "t.i16", MetaValue::I16(-32000));
    s(&mut w, "t.u32", MetaValue::U32(4_000_000_000));
    s(&mut w, "t.i32", MetaValue::I32(-2_000_000_000));
    s(&mut w, "t.f32", MetaValue::F32(3.25));
    s(&mut w, "t.bool", MetaValue::Bool(true));
    s(&mut w, "t.u64", MetaValue::U64(u64::MAX - 5));
    s(&mut w, "t.i64", MetaValue::I64(i64::MIN + 7));
    s(&mut w, "t.f64", MetaValue::F64(-1.0e300));
    s(&mut w, "t.empty", MetaValue::str(""));
    s(
        &mut w,
        "t.strs",
        MetaValue::str_array(["a", "", "päter", "<|im_end|>"]),
    );
    s(&mut w, "t.f32s", MetaValue::f32_array([1.5, -2.0, 0.0]));
    s(&mut w, "t.i32s", MetaValue::i32_array([1, -2, 3]));
    s(
        &mut w,
        "t.empty_arr",
        MetaValue::Array(ValueType::U8, vec![]),
    );
    let f32s: Vec<u8> = (0..8 * 3)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    w.add_tensor("a.f32", GgmlType::F32, &[8, 3], f32s).unwrap();
    let q: Vec<u8> = (0..GgmlType::Q4_0.row_size(64).unwrap() * 2)
        .map(|i| (i * 7) as u8)
        .collect();
    w.add_tensor("b.q4_0", GgmlType::Q4_0, &[64, 2], q).unwrap();
    let k: Vec<u8> = (0..GgmlType::Q6_K.row_size(256).unwrap())
        .map(|i| (i * 13) as u8)
        .collect();
    w.add_tensor("c.q6_k", GgmlType::Q6_K, &[256], k).unwrap();
    let v: Vec<u8> = (0..5 * 2).map(|i| i as u8).collect();
    w.add_tensor("d.f16.4d", GgmlType::F16, &[1, 5, 1, 1], v)
        .unwrap();
    w
}

#[test]
fn write_then_read_gives_back_every_value_and_byte() {
    let w = sample_writer();
    let bytes = w.to_bytes().unwrap();
    let g = Gguf::from_bytes(bytes.clone()).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.data_offset() % 32, 0);
    assert_eq!(g.get_u32("t.u32").unwrap(), 4_000_000_000);
    assert_eq!(g.get_i32("t.i32").unwrap(), -2_000_000_000);
    assert_eq!(g.get_u64("t.u64").unwrap(), u64::MAX - 5);
    assert_eq!(g.get_f32("t.f32").unwrap(), 3.25);
    assert!(g.get_bool("t.bool").unwrap());
    assert_eq!(g.get_str("general.name").unwrap(), "nib test ✓ ünïcødé");
    assert_eq!(g.get_str("t.empty").unwrap(), "");
    assert_eq!(g.get("t.f64"), Some(&Value::F64(-1.0e300)));
    assert_eq!(g.get("t.i64"), Some(&Value::I64(i64::MIN + 7)));
    let strs: Vec<&[u8]> = g.get_str_array("t.strs").unwrap().collect();
    assert_eq!(
        strs,
        vec![&b"a"[..], b"", "päter".as_bytes(), b"<|im_end|>"]
    );
    assert_eq!(g.get_f32_array("t.f32s").unwrap(), vec![1.5, -2.0, 0.0]);
    assert_eq!(g.get_int_array("t.i32s").unwrap(), vec![1, -2, 3]);
    assert_eq!(g.get_array("t.empty_arr").unwrap().len, 0);
    // Every value converts back to what was written.
    for (k, v) in g.metadata() {
        let (_, want) = sample_meta(k);
        assert_eq!(g.to_owned_value(v), want, "{k}");
    }
    // Tensors: same infos, same bytes, aligned.
    assert_eq!(g.tensors().len(), 4);
    let (t, data) = g.tensor("b.q4_0").unwrap();
    assert_eq!((t.ty, t.dims.clone()), (GgmlType::Q4_0, vec![64, 2]));
    assert_eq!(
        data,
        (0..72)
            .map(|i| (i * 7) as u8)
            .collect::<Vec<_>>()
            .as_slice()
    );
    for t in g.tensors() {
        assert_eq!(t.offset % 32, 0, "{}", t.name);
    }
    // Writing what was read gives the same file.
    let mut w2 = GgufWriter::new();
    for (k, v) in g.metadata() {
        w2.set(k, g.to_owned_value(v)).unwrap();
    }
    for t in g.tensors() {
        w2.add_tensor(&t.name, t.ty, &t.dims, g.tensor_data(t).to_vec())
            .unwrap();
    }
    assert_eq!(w2.to_bytes().unwrap(), bytes);
}

fn sample_meta(key: &str) -> (String, MetaValue) {
    let w = sample_writer();
    let g = Gguf::from_bytes(w.to_bytes().unwrap()).unwrap();
    let v = g.get(key).unwrap();
    (key.to_string(), g.to_owned_value(v))
}

#[test]
fn errors_name_the_key_and_the_types() {
    let g = Gguf::from_bytes(sample_writer().to_bytes().unwrap()).unwrap();
    let e = g.get_u32("llama.block_count").unwrap_err().to_string();
    assert!(
        e.contains("llama.block_count") && e.contains("missing"),
        "{e}"
    );
    let e = g.get_u32("general.name").unwrap_err().to_string();
    assert!(
        e.contains("general.name") && e.contains("string") && e.contains("u32"),
        "{e}"
    );
    let e = g.get_u32("t.i32").unwrap_err().to_string();
    assert!(e.contains("does not fit"), "{e}");
    let e = g.get_f32_array("t.strs").unwrap_err().to_string();
    assert!(e.contains("array of string"), "{e}");
}

/// Metadata and tensor table as the Python reference reader sees them.
const PY_DUMP: &str = r#"
import json, sys
from gguf import GGUFReader, GGUFValueType as T
r = GGUFReader(sys.argv[1])
def conv(t, part):
    if t == T.STRING:
        return bytes(part).decode("utf-8", "replace")
    v = part.tolist()[0]
    return v
meta = {}
for k, f in r.fields.items():
    if k.startswith("GGUF."):
        continue
    if f.types[0] == T.ARRAY:
        et = f.types[1] if len(f.types) > 1 else None
        meta[k] = {"type": "array", "elem": int(et) if et is not None else None,
                   "values": [conv(et, f.parts[i]) for i in f.data]}
    else:
        meta[k] = {"type": int(f.types[0]), "value": conv(f.types[0], f.parts[f.data[0]])}
tensors = [{"name": t.name, "type": int(t.tensor_type), "shape": [int(x) for x in t.shape],
            "offset": int(t.data_offset), "bytes": int(t.n_bytes)} for t in r.tensors]
json.dump({"metadata": meta, "tensors": tensors, "alignment": r.alignment}, sys.stdout)
"#;

fn python_dump(path: &Path) -> Json {
    let py = python_with_gguf();
    let out = Command::new(&py)
        .args(["-c", PY_DUMP])
        .arg(path)
        .output()
        .unwrap();
    common::assert_success("the python reader", &out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn json_of_value(g: &Gguf, v: &Value) -> Json {
    use MetaValue as M;
    fn conv(m: &MetaValue) -> Json {
        match m {
            M::U8(x) => (*x).into(),
            M::I8(x) => (*x).into(),
            M::U16(x) => (*x).into(),
            M::I16(x) => (*x).into(),
            M::U32(x) => (*x).into(),
            M::I32(x) => (*x).into(),
            M::U64(x) => (*x).into(),
            M::I64(x) => (*x).into(),
            M::F32(x) => (*x as f64).into(),
            M::F64(x) => (*x).into(),
            M::Bool(x) => (*x).into(),
            M::String(s) => String::from_utf8_lossy(s).into_owned().into(),
            M::Array(_, items) => Json::Array(items.iter().map(conv).collect()),
        }
    }
    conv(&g.to_owned_value(v))
}

/// nib's view of a file against Python's: every key, type and value; every tensor's name, type,
/// shape, absolute offset and size.
fn assert_same_as_python(path: &Path) {
    let g = Gguf::open(path).unwrap();
    let py = python_dump(path);
    let meta = py["metadata"].as_object().unwrap();
    assert_eq!(
        meta.len(),
        g.metadata_len(),
        "{}: metadata count",
        path.display()
    );
    for (k, v) in g.metadata() {
        let p = &meta[k];
        let mine = json_of_value(&g, v);
        if let Value::Array(a) = v {
            assert_eq!(p["type"], "array", "{k}");
            // Python records no element type for an empty array.
            if a.len > 0 || !p["elem"].is_null() {
                assert_eq!(p["elem"].as_u64(), Some(a.elem as u64), "{k}: element type");
            }
            assert_eq!(p["values"], mine, "{k}: values");
        } else {
            assert_eq!(p["type"].as_u64(), Some(v.value_type() as u64), "{k}: type");
            match (&p["value"], &mine) {
                (Json::Number(a), Json::Number(b)) if a.is_f64() || b.is_f64() => {
                    assert_eq!(a.as_f64(), b.as_f64(), "{k}")
                }
                (a, b) => assert_eq!(a, b, "{k}"),
            }
        }
    }
    let tensors = py["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), g.tensors().len());
    for (p, t) in tensors.iter().zip(g.tensors()) {
        assert_eq!(p["name"], t.name.as_str());
        assert_eq!(p["type"].as_u64(), Some(t.ty.id() as u64), "{}", t.name);
        assert_eq!(
            p["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect::<Vec<_>>(),
            t.dims
        );
        assert_eq!(
            p["offset"].as_u64(),
            Some(g.data_offset() as u64 + t.offset),
            "{}",
            t.name
        );
        assert_eq!(p["bytes"].as_u64(), Some(t.size), "{}", t.name);
    }
}

#[test]
fn python_reads_what_nib_writes() {
    let dir = Scratch::new("gguf-py");
    let path = dir.path("sample.gguf");
    std::fs::write(&path, sample_writer().to_bytes().unwrap()).unwrap();
    assert_same_as_python(&path);
}

#[test]
fn nib_reads_the_real_models_as_python_does() {
    assert_same_as_python(&common::model_path(common::SMOLLM2));
    assert_same_as_python(&common::model_path(common::GEMMA3));
}

#[test]
fn inspect_reports_the_facts_python_sees() {
    for (name, arch, layers, vocab, template) in [
        (common::SMOLLM2, "llama", 30, 49152, true),
        (common::GEMMA3, "gemma3", 18, 262144, false),
    ] {
        let path = common::model_path(name);
        let out = common::nib()
            .arg("inspect")
            .arg("--json")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        let v: Json = serde_json::from_slice(&out.stdout).unwrap();
        let py = python_dump(&path);
        assert_eq!(v["architecture"], arch);
        assert_eq!(v["block_count"], layers);
        assert_eq!(v["vocab_size"], vocab);
        assert_eq!(v["has_chat_template"], template);
        assert_eq!(
            v["tensors"].as_array().unwrap().len(),
            py["tensors"].as_array().unwrap().len()
        );
        let params: u64 = py["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                t["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap())
                    .product::<u64>()
            })
            .sum();
        assert_eq!(v["n_params"].as_u64(), Some(params));
        for (a, b) in v["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .zip(py["tensors"].as_array().unwrap())
        {
            assert_eq!(a["name"], b["name"]);
            assert_eq!(a["offset"], b["offset"]);
            assert_eq!(a["bytes"], b["bytes"]);
        }
    }
}

// ---- hostile input ------------------------------------------------------------------------

/// A small valid file and the offsets where its sections start.
struct Layout {
    bytes: Vec<u8>,
    /// (offset, what) of every field boundary in the header.
    boundaries: Vec<(usize, String)>,
    kv_start: usize,
    tensor_info_start: usize,
}

fn small_file() -> Layout {
    let mut w = GgufWriter::new();
    w.set("general.architecture", MetaValue::str("llama"))
        .unwrap();
    w.set("a.count", MetaValue::U32(7)).unwrap();
    w.set("a.list", MetaValue::str_array(["x", "yy"])).unwrap();
    w.add_tensor("w", GgmlType::Q8_0, &[32, 2], vec![1; 68])
        .unwrap();
    w.add_tensor("v", GgmlType::F32, &[4], vec![2; 16]).unwrap();
    let bytes = w.to_bytes().unwrap();
    // Walk the header by hand to find the boundaries.
    let mut b = vec![
        (0, "magic".to_string()),
        (4, "version".into()),
        (8, "tensor count".into()),
        (16, "kv count".into()),
    ];
    let mut p = 24;
    let kv_start = p;
    let rd64 = |p: usize| u64::from_le_bytes(bytes[p..p + 8].try_into().unwrap()) as usize;
    let rd32 = |p: usize| u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap());
    for i in 0..3 {
        b.push((p, format!("kv {i} key length")));
        p += 8 + rd64(p);
        b.push((p, format!("kv {i} type")));
        let ty = rd32(p);
        p += 4;
        b.push((p, format!("kv {i} value")));
        match ty {
            8 => p += 8 + rd64(p),
            4 => p += 4,
            9 => {
                p += 12;
                for _ in 0..2 {
                    b.push((p, format!("kv {i} array element")));
                    p += 8 + rd64(p);
                }
            }
            _ => unreachable!(),
        }
    }
    let tensor_info_start = p;
    for i in 0..2 {
        b.push((p, format!("tensor {i} name")));
        p += 8 + rd64(p);
        b.push((p, format!("tensor {i} n_dims")));
        let nd = rd32(p) as usize;
        p += 4;
        b.push((p, format!("tensor {i} dims")));
        p += 8 * nd;
        b.push((p, format!("tensor {i} type")));
        p += 4;
        b.push((p, format!("tensor {i} offset")));
        p += 8;
    }
    b.push((p, "padding".into()));
    let g = Gguf::from_bytes(bytes.clone()).unwrap();
    b.push((g.data_offset(), "tensor data".into()));
    let last = g
        .tensors()
        .iter()
        .map(|t| g.data_offset() + (t.offset + t.size) as usize)
        .max()
        .unwrap();
    b.push((last - 8, "end of the last tensor".into()));
    Layout {
        bytes,
        boundaries: b,
        kv_start,
        tensor_info_start,
    }
}

fn patch(bytes: &[u8], at: usize, with: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at..at + with.len()].copy_from_slice(with);
    v
}

/// The malformed corpus: (description, bytes).
fn malformed_corpus() -> Vec<(String, Vec<u8>)> {
    let l = small_file();
    let g = Gguf::from_bytes(l.bytes.clone()).expect("the base file is valid");
    let mut c: Vec<(String, Vec<u8>)> = Vec::new();
    // Truncations at every section boundary (and one byte into each field).
    for (off, what) in &l.boundaries {
        for cut in [*off, off + 1] {
            if cut < l.bytes.len() {
                c.push((
                    format!("truncated at {what} (+{})", cut - off),
                    l.bytes[..cut].to_vec(),
                ));
            }
        }
    }
    // A case; a copy of the file with bytes written at an offset.
    let mut case = |what: &str, bytes: Vec<u8>| c.push((what.to_string(), bytes));
    let at = |off: usize, bytes: &[u8]| patch(&l.bytes, off, bytes);
    case("empty file", vec![]);
    case("bad magic", at(0, b"GGML"));
    case("version 1", at(4, &1u32.to_le_bytes()));
    case("version 4", at(4, &4u32.to_le_bytes()));
    case("huge tensor count", at(8, &u64::MAX.to_le_bytes()));
    case("huge kv count", at(16, &(1u64 << 40).to_le_bytes()));
    case(
        "huge key length",
        at(l.kv_start, &(1u64 << 62).to_le_bytes()),
    );
    let kv0_type = l.kv_start + 8 + "general.architecture".len();
    case("unknown value type", at(kv0_type, &13u32.to_le_bytes()));
    case("value type 255", at(kv0_type, &255u32.to_le_bytes()));
    case(
        "huge string length",
        at(kv0_type + 4, &(u64::MAX - 3).to_le_bytes()),
    );
    // The array: key "a.list" follows "a.count" (u32).
    let kv2 = kv0_type + 4 + 8 + "llama".len() + 8 + "a.count".len() + 4 + 4;
    let arr = kv2 + 8 + "a.list".len() + 4;
    case("unknown array element type", at(arr, &99u32.to_le_bytes()));
    case(
        "huge array length",
        at(arr + 4, &(1u64 << 40).to_le_bytes()),
    );
    case(
        "array length past the end",
        at(arr + 4, &1_000_000u64.to_le_bytes()),
    );
    let t0 = l.tensor_info_start + 8 + 1; // after name "w"
    case("n_dims 5", at(t0, &5u32.to_le_bytes()));
    case("n_dims 0", at(t0, &0u32.to_le_bytes()));
    case("negative dimension", at(t0 + 4, &u64::MAX.to_le_bytes()));
    case("dims overflow", {
        let v = at(t0 + 4, &(1u64 << 40).to_le_bytes());
        patch(&v, t0 + 12, &(1u64 << 40).to_le_bytes())
    });
    case(
        "dim 0 not a multiple of the block",
        at(t0 + 4, &33u64.to_le_bytes()),
    );
    case(
        "unknown tensor type 4 (removed)",
        at(t0 + 20, &4u32.to_le_bytes()),
    );
    case(
        "unknown tensor type 9999",
        at(t0 + 20, &9999u32.to_le_bytes()),
    );
    case("misaligned tensor offset", at(t0 + 24, &3u64.to_le_bytes()));
    case(
        "tensor data past the end",
        at(t0 + 24, &(1u64 << 20).to_le_bytes()),
    );
    let t1_off = t0 + 28 + 8 + 1 + 4 + 8 + 4;
    case("overlapping tensors", at(t1_off, &0u64.to_le_bytes()));
    case("duplicate tensor name", at(t0 + 28 + 8, b"w"));
    case("duplicate key", {
        let mut w = GgufWriter::new();
        w.set("k.aaa", MetaValue::U32(1)).unwrap();
        w.set("k.bbb", MetaValue::U32(2)).unwrap();
        let b = w.to_bytes().unwrap();
        let pos = b.windows(5).position(|x| x == b"k.bbb").unwrap();
        patch(&b, pos, b"k.aaa")
    });
    case("bad alignment", {
        let mut w = GgufWriter::new();
        w.set("general.alignment", MetaValue::U32(32)).unwrap();
        let b = w.to_bytes().unwrap();
        let pos = b
            .windows(4)
            .rposition(|x| x == 32u32.to_le_bytes())
            .expect("the alignment value");
        patch(&b, pos, &3u32.to_le_bytes())
    });
    case("not UTF-8 key", at(l.kv_start + 8, &[0xff, 0xfe]));
    drop(g);
    c
}

#[test]
fn malformed_files_get_a_one_line_error_and_exit_code_1() {
    let corpus = malformed_corpus();
    assert!(corpus.len() >= 30, "corpus has {} files", corpus.len());
    let dir = Scratch::new("gguf-bad");
    let mut failures = Vec::new();
    for (i, (what, bytes)) in corpus.iter().enumerate() {
        // In process: an error, never a panic.
        let r = std::panic::catch_unwind(|| Gguf::from_bytes(bytes.clone()).map(|_| ()));
        match r {
            Err(_) => failures.push(format!("{what}: panicked")),
            Ok(Ok(())) => failures.push(format!("{what}: accepted")),
            Ok(Err(_)) => {}
        }
        // Through the binary: exit code 1 and one line on stderr.
        let path = dir.path(&format!("bad{i}.gguf"));
        std::fs::write(&path, bytes).unwrap();
        let out = common::nib().arg("inspect").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1)
            || err.trim().lines().count() != 1
            || !err.starts_with("error: ")
            || err.contains("panicked")
        {
            failures.push(format!(
                "{what}: exit {:?}, stderr {err:?}",
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Bounded mutation fuzzing: valid headers (a small file, and the first 64 KiB of each real
/// model, which hold their whole metadata prefix) mutated many ways; parsing must return Ok or
/// Err, never panic or hang.
#[test]
fn mutated_headers_never_panic() {
    let mut seeds = vec![small_file().bytes, sample_writer().to_bytes().unwrap()];
    for m in [common::SMOLLM2, common::GEMMA3] {
        let bytes = std::fs::read(common::model_path(m)).unwrap();
        seeds.push(bytes[..65536].to_vec());
    }
    let mut rng = Rng(0x00c0_ffee_1234_5678);
    let interesting: [u64; 8] = [0, 1, 0x7f, 0xff, 0xffff_ffff, 1 << 32, u64::MAX, 1 << 62];
    let iterations = 3000;
    for i in 0..iterations {
        let seed = &seeds[i % seeds.len()];
        let mut v = seed.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(v.len().min(4096));
            match rng.below(6) {
                0 => v[at] ^= 1 << rng.below(8),
                1 => v[at] = rng.byte(),
                2 => {
                    let x = interesting[rng.below(interesting.len())].to_le_bytes();
                    let w = [1, 2, 4, 8][rng.below(4)];
                    let end = (at + w).min(v.len());
                    v[at..end].copy_from_slice(&x[..end - at]);
                }
                3 => v.truncate(at),
                4 => {
                    let n = rng.below(16);
                    v.splice(at..at, (0..n).map(|_| rng.byte()));
                }
                _ => {
                    let n = rng.below(16).min(v.len() - at);
                    v.drain(at..at + n);
                }
            }
            if v.is_empty() {
                break;
            }
        }
        let r = std::panic::catch_unwind(|| Gguf::from_bytes(v.clone()).map(|g| g.metadata_len()));
        assert!(
            r.is_ok(),
            "iteration {i}: the parser panicked on a mutated header"
        );
    }
}
