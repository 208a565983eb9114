//! The GGUF reader: parses header, metadata and tensor infos straight from the file's bytes
//! (a read-only memory map by default, see `memory.rs`) and validates them; tensor data stay in
//! the map and are handed out as borrowed slices. The typed metadata getters are in
//! `metadata.rs`.

use super::memory::Backing;
use super::value::{ArrayInfo, Span, Value, ValueType};
use super::{GgufError, Result};
use nib_simd::GgmlType;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// `"GGUF"` read as a little-endian u32.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Default alignment of the data section and of every tensor's data.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;
/// Longest key or string value accepted (1 GiB); anything longer is treated as corrupt.
const MAX_STRING_LEN: u64 = 1 << 30;
/// Longest array accepted (2^32 elements); anything longer is treated as corrupt.
const MAX_ARRAY_LEN: u64 = 1 << 32;

/// One tensor's description from the tensor-info table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub ty: GgmlType,
    /// Dimensions, fastest-varying first (ggml's `ne`): `[columns, rows, ...]`.
    pub dims: Vec<u64>,
    /// Offset relative to the start of the data section.
    pub offset: u64,
    /// Bytes of data.
    pub size: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Number of rows when viewed as a 2-D matrix `[dims[0], product of the rest]`.
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }

    pub fn n_cols(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }
}

/// An open GGUF file.
pub struct Gguf {
    backing: Backing,
    path: Option<PathBuf>,
    version: u32,
    alignment: u64,
    pub(super) metadata: Vec<(String, Value)>,
    pub(super) meta_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    data_offset: usize,
}

impl std::fmt::Debug for Gguf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// A cursor over the file's bytes that turns every short read into a clear error.
pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                GgufError::new(format!(
                    "file is truncated: {} needs {n} bytes at offset {} but the file has {} bytes",
                    what(),
                    self.pos,
                    self.buf.len()
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        Ok(self
            .take(N, what)?
            .try_into()
            .expect("take returned N bytes"))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// A GGUF string: u64 length then bytes. Returns its span.
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<Span> {
        let len = self.u64(what)?;
        if len > MAX_STRING_LEN {
            return Err(GgufError::new(format!(
                "{} has an absurd length of {len} bytes",
                what()
            )));
        }
        let offset = self.pos;
        self.take(len as usize, what)?;
        Ok(Span {
            offset,
            len: len as usize,
        })
    }

    pub(super) fn value(
        &mut self,
        ty: ValueType,
        what: &dyn Fn() -> String,
        depth: u32,
    ) -> Result<Value> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(what)?[0]),
            ValueType::I8 => Value::I8(self.array::<1>(what)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::Bool => {
                let b = self.array::<1>(what)?[0];
                if b > 1 {
                    return Err(GgufError::new(format!(
                        "{} is a bool with value {b}",
                        what()
                    )));
                }
                Value::Bool(b == 1)
            }
            ValueType::String => Value::String(self.string(what)?),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Array => {
                if depth > 8 {
                    return Err(GgufError::new(format!(
                        "{} nests arrays too deeply",
                        what()
                    )));
                }
                let elem_id = self.u32(what)?;
                let elem = ValueType::from_id(elem_id).ok_or_else(|| {
                    GgufError::new(format!(
                        "{} has unknown array element type {elem_id}",
                        what()
                    ))
                })?;
                let len = self.u64(what)?;
                if len > MAX_ARRAY_LEN {
                    return Err(GgufError::new(format!(
                        "{} has an absurd length of {len} elements",
                        what()
                    )));
                }
                let offset = self.pos;
                match elem.fixed_size() {
                    Some(size) => {
                        let bytes = (len as usize)
                            .checked_mul(size)
                            .ok_or_else(|| GgufError::new(format!("{} is too large", what())))?;
                        self.take(bytes, what)?;
                    }
                    None => {
                        // Every element takes at least 8 bytes (a string's length or an array's
                        // header), so a length beyond what is left is corrupt: fail before looping.
                        if (len as u128) * 8 > self.remaining() as u128 {
                            return Err(GgufError::new(format!(
                                "file is truncated: {} claims {len} elements but only {} bytes remain",
                                what(),
                                self.remaining()
                            )));
                        }
                        for i in 0..len {
                            let w = || format!("{} element {i}", what());
                            self.value(elem, &w, depth + 1)?;
                        }
                    }
                }
                Value::Array(ArrayInfo {
                    elem,
                    len: len as usize,
                    offset,
                    byte_len: self.pos - offset,
                })
            }
        })
    }
}

fn pad(x: u64, align: u64) -> Option<u64> {
    x.checked_add(align - 1).map(|v| v / align * align)
}

impl Gguf {
    /// Open and validate a GGUF file through a read-only memory map.
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf> {
        let path = path.as_ref();
        Gguf::parse_file(path, Backing::map(path)?)
    }

    /// Open and validate a GGUF file by reading it into memory (`--no-mmap`).
    pub fn read(path: impl AsRef<Path>) -> Result<Gguf> {
        let path = path.as_ref();
        Gguf::parse_file(path, Backing::read(path)?)
    }

    fn parse_file(path: &Path, backing: Backing) -> Result<Gguf> {
        let mut g = Gguf::parse(backing)
            .map_err(|e| GgufError::new(format!("{}: {}", path.display(), e.message())))?;
        g.path = Some(path.to_path_buf());
        Ok(g)
    }

    /// Parse and validate bytes already in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Gguf> {
        Gguf::parse(Backing::Owned(bytes))
    }

    fn parse(backing: Backing) -> Result<Gguf> {
        let buf = backing.bytes();
        let mut c = Cursor { buf, pos: 0 };
        let magic = c.array::<4>(&|| "the magic number".into())?;
        if magic != GGUF_MAGIC {
            return Err(GgufError::new(format!(
                "not a GGUF file (magic bytes {:02x?}, expected \"GGUF\")",
                magic
            )));
        }
        let version = c.u32(&|| "the version".into())?;
        match version {
            2 | 3 => {}
            1 => {
                return Err(GgufError::new(
                    "GGUF version 1 is not supported (only 2 and 3)",
                ))
            }
            v => {
                return Err(GgufError::new(format!(
                    "unsupported GGUF version {v} (only 2 and 3)"
                )))
            }
        }
        let n_tensors = c.u64(&|| "the tensor count".into())?;
        let n_kv = c.u64(&|| "the metadata count".into())?;
        // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at
        // least 8 + 4 + 8 + 4 + 8. Counts beyond what the file can hold are corrupt.
        if n_kv as u128 * 13 > c.remaining() as u128 {
            return Err(GgufError::new(format!(
                "metadata count {n_kv} is impossible for a file of {} bytes",
                buf.len()
            )));
        }
        if n_tensors as u128 * 32 > c.remaining() as u128 {
            return Err(GgufError::new(format!(
                "tensor count {n_tensors} is impossible for a file of {} bytes",
                buf.len()
            )));
        }

        let mut metadata = Vec::with_capacity(n_kv as usize);
        let mut meta_index = HashMap::with_capacity(n_kv as usize);
        for i in 0..n_kv {
            let key_span = c.string(&|| format!("the key of metadata entry {i}"))?;
            let key = std::str::from_utf8(&buf[key_span.offset..key_span.offset + key_span.len])
                .map_err(|_| GgufError::new(format!("the key of metadata entry {i} is not UTF-8")))?
                .to_string();
            let what = || format!("metadata value {key:?}");
            let ty_id = c.u32(&what)?;
            let ty = ValueType::from_id(ty_id).ok_or_else(|| {
                GgufError::new(format!("metadata value {key:?} has unknown type {ty_id}"))
            })?;
            let value = c.value(ty, &what, 0)?;
            if meta_index.insert(key.clone(), metadata.len()).is_some() {
                return Err(GgufError::new(format!("duplicate metadata key {key:?}")));
            }
            metadata.push((key, value));
        }

        let alignment = match meta_index.get("general.alignment").map(|&i| metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(Value::U32(a)) if a != 0 && a.is_power_of_two() => a as u64,
            Some(v) => {
                return Err(GgufError::new(format!(
                    "general.alignment must be a power of two stored as u32, found {v:?}"
                )))
            }
        };

        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut tensor_index = HashMap::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name_span = c.string(&|| format!("the name of tensor {i}"))?;
            let name =
                std::str::from_utf8(&buf[name_span.offset..name_span.offset + name_span.len])
                    .map_err(|_| GgufError::new(format!("the name of tensor {i} is not UTF-8")))?
                    .to_string();
            let what = || format!("tensor {name:?}");
            let n_dims = c.u32(&what)? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(GgufError::new(format!(
                    "tensor {name:?} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                let d = c.u64(&what)?;
                if d > i64::MAX as u64 {
                    return Err(GgufError::new(format!(
                        "tensor {name:?} has a negative dimension"
                    )));
                }
                dims.push(d);
            }
            let ty_id = c.u32(&what)?;
            let ty = GgmlType::from_id(ty_id).ok_or_else(|| {
                GgufError::new(format!("tensor {name:?} has unknown type id {ty_id}"))
            })?;
            let offset = c.u64(&what)?;
            let n_elements = dims
                .iter()
                .try_fold(1u64, |acc, &d| {
                    acc.checked_mul(d).filter(|&v| v <= i64::MAX as u64)
                })
                .ok_or_else(|| {
                    GgufError::new(format!(
                        "tensor {name:?} has dimensions {dims:?} whose product overflows"
                    ))
                })?;
            let _ = n_elements;
            let bs = ty.block_size() as u64;
            if dims[0] % bs != 0 {
                return Err(GgufError::new(format!(
                    "tensor {name:?}: first dimension {} is not a multiple of the {} block size {bs}",
                    dims[0], ty
                )));
            }
            let row_bytes = (dims[0] / bs).checked_mul(ty.type_size() as u64);
            let size = row_bytes
                .and_then(|r| dims[1..].iter().try_fold(r, |acc, &d| acc.checked_mul(d)))
                .ok_or_else(|| GgufError::new(format!("tensor {name:?} is too large")))?;
            if offset % alignment != 0 {
                return Err(GgufError::new(format!(
                    "tensor {name:?} has offset {offset}, not a multiple of the alignment {alignment}"
                )));
            }
            if tensor_index.insert(name.clone(), tensors.len()).is_some() {
                return Err(GgufError::new(format!("duplicate tensor name {name:?}")));
            }
            tensors.push(TensorInfo {
                name,
                ty,
                dims,
                offset,
                size,
            });
        }

        let data_offset = pad(c.pos as u64, alignment)
            .ok_or_else(|| GgufError::new("data section offset overflows"))?;
        let data_len = (buf.len() as u64).saturating_sub(data_offset);
        if !tensors.is_empty() && data_offset > buf.len() as u64 {
            return Err(GgufError::new(format!(
                "file is truncated: the data section would start at {data_offset} but the file has {} bytes",
                buf.len()
            )));
        }
        // Every tensor inside the data section, and no two overlapping.
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by_key(|&i| tensors[i].offset);
        let mut prev_end = 0u64;
        let mut prev_name = "";
        for &i in &order {
            let t = &tensors[i];
            let end = t.offset.checked_add(t.size).filter(|&e| e <= data_len).ok_or_else(|| {
                GgufError::new(format!(
                    "tensor {:?} ({} bytes at data offset {}) lies outside the file (data section holds {data_len} bytes; file truncated?)",
                    t.name, t.size, t.offset
                ))
            })?;
            if t.offset < prev_end {
                return Err(GgufError::new(format!(
                    "tensors {prev_name:?} and {:?} overlap",
                    t.name
                )));
            }
            if t.size > 0 {
                prev_end = end;
                prev_name = &t.name;
            }
        }

        Ok(Gguf {
            backing,
            path: None,
            version,
            alignment,
            metadata,
            meta_index,
            tensors,
            tensor_index,
            data_offset: data_offset as usize,
        })
    }

    // --- file-level facts -----------------------------------------------------------------

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Offset of the data section in the file.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    pub fn file_size(&self) -> usize {
        self.bytes().len()
    }

    // --- memory (see `memory.rs`) ----------------------------------------------------------

    /// The whole file's bytes, writable when they were read into memory (`None` when mapped).
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        self.backing.bytes_mut()
    }

    /// Whether the bytes are memory-mapped (as opposed to read into memory).
    pub fn is_mapped(&self) -> bool {
        self.backing.is_mapped()
    }

    /// Drop this process's mapping of the whole pages inside `range` (bytes of the file no
    /// longer used, such as weights copied elsewhere at load), so they stop counting in its
    /// resident memory. Reading them again maps them again from the file. Nothing for bytes
    /// read into memory.
    pub fn release_pages(&self, range: Range<usize>) {
        self.backing.release_pages(range)
    }

    /// Lock the mapped pages into memory (`--mlock`).
    pub fn mlock(&self) -> Result<()> {
        self.backing.mlock()
    }

    /// [`Gguf::mlock`] of every mapped page except those wholly inside the `skip` ranges (bytes
    /// released with [`Gguf::release_pages`], which locking would map again).
    pub fn mlock_except(&self, skip: &[Range<usize>]) -> Result<()> {
        self.backing.mlock_except(skip)
    }

    /// Ask the kernel to read the mapped file ahead (a hint; errors are ignored).
    pub fn advise_willneed(&self) {
        self.backing.advise_willneed()
    }

    // --- tensors --------------------------------------------------------------------------

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The bytes of a tensor's data, borrowed from the map.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let start = self.data_offset + info.offset as usize;
        &self.bytes()[start..start + info.size as usize]
    }

    /// A tensor by name: its info and data.
    pub fn tensor(&self, name: &str) -> Option<(&TensorInfo, &[u8])> {
        self.tensor_info(name).map(|t| (t, self.tensor_data(t)))
    }

    /// Total number of weights in all tensors.
    pub fn n_params(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_elements()).sum()
    }
}
