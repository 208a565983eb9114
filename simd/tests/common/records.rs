//! Reader for the record files under `tests/golden/kernels/` (written once by a harness linked
//! against llama.cpp's `libggml-cpu`): a sequence of `[u32 name length][name][u64 byte count]
//! [bytes]`, little-endian. Shared by `nib-simd`'s and `nib`'s golden-kernel tests.
#![allow(dead_code)]

use half::f16;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Named byte arrays of one record file.
pub struct Records {
    pub path: PathBuf,
    map: HashMap<String, Vec<u8>>,
}

impl Records {
    pub fn read(path: &Path) -> Records {
        let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut map = HashMap::new();
        let mut i = 0;
        while i < b.len() {
            let l = u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
            let name = String::from_utf8(b[i + 4..i + 4 + l].to_vec()).unwrap();
            i += 4 + l;
            let n = u64::from_le_bytes(b[i..i + 8].try_into().unwrap()) as usize;
            map.insert(name, b[i + 8..i + 8 + n].to_vec());
            i += 8 + n;
        }
        Records {
            path: path.to_path_buf(),
            map,
        }
    }

    pub fn name(&self) -> &str {
        self.path.file_name().unwrap().to_str().unwrap()
    }

    pub fn has(&self, k: &str) -> bool {
        self.map.contains_key(k)
    }

    pub fn bytes(&self, k: &str) -> &[u8] {
        self.map
            .get(k)
            .unwrap_or_else(|| panic!("{}: record {k} missing", self.path.display()))
    }

    pub fn int(&self, k: &str) -> usize {
        i64::from_le_bytes(self.bytes(k).try_into().unwrap()) as usize
    }

    pub fn u64(&self, k: &str) -> u64 {
        u64::from_le_bytes(self.bytes(k).try_into().unwrap())
    }

    pub fn float(&self, k: &str) -> f32 {
        f32::from_le_bytes(self.bytes(k).try_into().unwrap())
    }

    pub fn f32s(&self, k: &str) -> Vec<f32> {
        self.bytes(k)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    pub fn f16s(&self, k: &str) -> Vec<f16> {
        self.bytes(k)
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

/// The golden kernel directory: `NIB_KERNEL_GOLDEN_DIR`, else `<workspace>/tests/golden/kernels`.
pub fn golden_dir(workspace: &Path) -> PathBuf {
    match std::env::var("NIB_KERNEL_GOLDEN_DIR") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace.join("tests/golden/kernels"),
    }
}

/// The record files whose names start with `prefix`, sorted.
pub fn files(dir: &Path, prefix: &str) -> Vec<Records> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no {prefix}* files in {}", dir.display());
    v.iter().map(|p| Records::read(p)).collect()
}

/// Bit-for-bit comparison (NaNs equal whatever their payload); prints the first differences.
pub fn same(what: &str, got: &[f32], want: &[f32]) -> bool {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let differs =
        |i: usize| got[i].to_bits() != want[i].to_bits() && !(got[i].is_nan() && want[i].is_nan());
    let bad: Vec<usize> = (0..got.len()).filter(|&i| differs(i)).collect();
    if !bad.is_empty() {
        let ex: Vec<String> = bad
            .iter()
            .take(4)
            .map(|&i| format!("[{i}] {} vs {}", got[i], want[i]))
            .collect();
        eprintln!(
            "{what}: {} of {} values differ from llama.cpp: {}",
            bad.len(),
            got.len(),
            ex.join(", ")
        );
    }
    bad.is_empty()
}
