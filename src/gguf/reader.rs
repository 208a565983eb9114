//! The GGUF reader: parses header, metadata and tensor infos straight from the file's bytes
//! (a read-only memory map by default) and validates them; tensor data stay in the map and are
//! handed out as borrowed slices.

use super::value::{ArrayInfo, MetaValue, Span, Value, ValueType};
use super::{GgufError, Result};
use memmap2::Mmap;
use nib_simd::GgmlType;
use std::collections::HashMap;
use std::fs::File;
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

/// Where a file's bytes live.
pub enum Backing {
    /// A read-only private mapping of the file (the default: nothing is copied at load).
    Mmap(Mmap),
    /// Bytes owned in memory (`--no-mmap`, or files built in memory by tests and tools).
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

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
    metadata: Vec<(String, Value)>,
    meta_index: HashMap<String, usize>,
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
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
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

    fn value(&mut self, ty: ValueType, what: &dyn Fn() -> String, depth: u32) -> Result<Value> {
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
        let file = File::open(path)
            .map_err(|e| GgufError::new(format!("cannot open {}: {e}", path.display())))?;
        // SAFETY: the map is read-only and private. nib never writes through it; if another
        // process truncates the file while it is mapped, reads may fault, as with any mmap-based
        // loader (llama.cpp has the same contract). We accept that, as the issue of a user
        // modifying a model file under a running process.
        let mmap = unsafe { Mmap::map(&file) }
            .map_err(|e| GgufError::new(format!("cannot map {}: {e}", path.display())))?;
        let mut g = Gguf::parse(Backing::Mmap(mmap))
            .map_err(|e| GgufError::new(format!("{}: {}", path.display(), e.message())))?;
        g.path = Some(path.to_path_buf());
        Ok(g)
    }

    /// Open and validate a GGUF file by reading it into memory (`--no-mmap`).
    pub fn read(path: impl AsRef<Path>) -> Result<Gguf> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| GgufError::new(format!("cannot read {}: {e}", path.display())))?;
        let mut g = Gguf::parse(Backing::Owned(bytes))
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

    /// The whole file's bytes, writable when they were read into memory (`None` when mapped).
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        match &mut self.backing {
            Backing::Mmap(_) => None,
            Backing::Owned(v) => Some(v),
        }
    }

    /// Drop this process's mapping of the whole pages inside `range` (bytes of the file no
    /// longer used, such as weights copied elsewhere at load), so they stop counting in its
    /// resident memory. Reading them again maps them again from the file. Nothing for bytes
    /// read into memory.
    pub fn release_pages(&self, range: std::ops::Range<usize>) {
        const PAGE: usize = 4096;
        if let Backing::Mmap(m) = &self.backing {
            let start = range.start.div_ceil(PAGE) * PAGE;
            let end = (range.end.min(m.len()) / PAGE) * PAGE;
            if end > start {
                // SAFETY: the mapping is a read-only private map of the file, never written, so
                // dropping its pages loses nothing: a later read faults the file's bytes back
                // in. The range lies inside the mapping. An error leaves the pages mapped,
                // which is harmless.
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
                };
            }
        }
    }

    /// Whether the bytes are memory-mapped (as opposed to read into memory).
    pub fn is_mapped(&self) -> bool {
        matches!(self.backing, Backing::Mmap(_))
    }

    /// Lock the mapped pages into memory (`--mlock`).
    pub fn mlock(&self) -> Result<()> {
        match &self.backing {
            Backing::Mmap(m) => m.lock().map_err(|e| {
                GgufError::new(format!(
                    "mlock of {} bytes failed: {e} (raise `ulimit -l` or run without --mlock)",
                    m.len()
                ))
            }),
            Backing::Owned(_) => Ok(()),
        }
    }

    /// [`Gguf::mlock`] of every mapped page except those wholly inside the `skip` ranges (bytes
    /// released with [`Gguf::release_pages`], which locking would map again).
    #[cfg(not(unix))]
    pub fn mlock_except(&self, _skip: &[std::ops::Range<usize>]) -> Result<()> {
        self.mlock()
    }

    /// [`Gguf::mlock`] of every mapped page except those wholly inside the `skip` ranges (bytes
    /// released with [`Gguf::release_pages`], which locking would map again).
    #[cfg(unix)]
    pub fn mlock_except(&self, skip: &[std::ops::Range<usize>]) -> Result<()> {
        const PAGE: usize = 4096;
        let Backing::Mmap(m) = &self.backing else {
            return Ok(());
        };
        // The pages released: each skipped range's whole pages, in order.
        let mut holes: Vec<(usize, usize)> = skip
            .iter()
            .map(|r| {
                (
                    r.start.div_ceil(PAGE) * PAGE,
                    r.end.min(m.len()) / PAGE * PAGE,
                )
            })
            .filter(|(a, b)| b > a)
            .collect();
        holes.sort_unstable();
        let mut at = 0;
        let lock = |from: usize, to: usize| -> Result<()> {
            if to <= from {
                return Ok(());
            }
            // SAFETY: `from..to` lies inside the mapping, which lives as long as `self`;
            // mlock only pins its pages (munmap unlocks them).
            let rc = unsafe { libc::mlock(m.as_ptr().add(from).cast(), to - from) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                return Err(GgufError::new(format!(
                    "mlock of {} bytes failed: {e} (raise `ulimit -l` or run without --mlock)",
                    to - from
                )));
            }
            Ok(())
        };
        for (a, b) in holes {
            lock(at, a.max(at))?;
            at = at.max(b);
        }
        lock(at, m.len())
    }

    /// Ask the kernel to read the mapped file ahead (a hint; errors are ignored).
    pub fn advise_willneed(&self) {
        if let Backing::Mmap(m) = &self.backing {
            let _ = m.advise(memmap2::Advice::WillNeed);
        }
    }

    // --- metadata -------------------------------------------------------------------------

    /// All metadata entries in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.metadata.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn metadata_len(&self) -> usize {
        self.metadata.len()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.meta_index.get(key).map(|&i| &self.metadata[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.meta_index.contains_key(key)
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| GgufError::new(format!("metadata key {key:?} is missing")))
    }

    fn wrong_type(key: &str, want: &str, v: &Value) -> GgufError {
        GgufError::new(format!(
            "metadata key {key:?} has type {}, expected {want}",
            v.value_type()
        ))
    }

    fn int_in_range(key: &str, v: &Value, lo: i128, hi: i128, want: &str) -> Result<i128> {
        let i = v.as_i128().ok_or_else(|| Self::wrong_type(key, want, v))?;
        if i < lo || i > hi {
            return Err(GgufError::new(format!(
                "metadata key {key:?} = {i} does not fit in {want}"
            )));
        }
        Ok(i)
    }

    /// An unsigned 32-bit value (any integer type whose value fits is accepted).
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.require(key)?;
        Ok(Self::int_in_range(key, v, 0, u32::MAX as i128, "u32")? as u32)
    }

    pub fn get_i32(&self, key: &str) -> Result<i32> {
        let v = self.require(key)?;
        Ok(Self::int_in_range(key, v, i32::MIN as i128, i32::MAX as i128, "i32")? as i32)
    }

    pub fn get_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        Ok(Self::int_in_range(key, v, 0, u64::MAX as i128, "u64")? as u64)
    }

    /// A float (f32 or f64).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        v.as_f64()
            .map(|f| f as f32)
            .ok_or_else(|| Self::wrong_type(key, "f32", v))
    }

    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.require(key)? {
            Value::Bool(b) => Ok(*b),
            v => Err(Self::wrong_type(key, "bool", v)),
        }
    }

    /// The raw bytes of a string value.
    pub fn get_str_bytes(&self, key: &str) -> Result<&[u8]> {
        match self.require(key)? {
            Value::String(s) => Ok(&self.bytes()[s.offset..s.offset + s.len]),
            v => Err(Self::wrong_type(key, "string", v)),
        }
    }

    /// A string value, which must be UTF-8.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        std::str::from_utf8(self.get_str_bytes(key)?)
            .map_err(|_| GgufError::new(format!("metadata key {key:?} is not valid UTF-8")))
    }

    /// Optional variants: `Ok(None)` when the key is absent, an error when it has the wrong type.
    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.contains_key(key)
            .then(|| self.get_u32(key))
            .transpose()
    }

    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        self.contains_key(key)
            .then(|| self.get_f32(key))
            .transpose()
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.contains_key(key)
            .then(|| self.get_bool(key))
            .transpose()
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.contains_key(key)
            .then(|| self.get_str(key))
            .transpose()
    }

    /// An array's description.
    pub fn get_array(&self, key: &str) -> Result<ArrayInfo> {
        match self.require(key)? {
            Value::Array(a) => Ok(*a),
            v => Err(Self::wrong_type(key, "array", v)),
        }
    }

    fn typed_array(&self, key: &str, elem: ValueType) -> Result<(ArrayInfo, &[u8])> {
        let a = self.get_array(key)?;
        if a.elem != elem {
            return Err(GgufError::new(format!(
                "metadata key {key:?} is an array of {}, expected an array of {elem}",
                a.elem
            )));
        }
        Ok((a, &self.bytes()[a.offset..a.offset + a.byte_len]))
    }

    /// The elements of a string array, as raw bytes, in order.
    pub fn get_str_array(&self, key: &str) -> Result<StrArrayIter<'_>> {
        let (a, bytes) = self.typed_array(key, ValueType::String)?;
        Ok(StrArrayIter {
            bytes,
            pos: 0,
            left: a.len,
        })
    }

    pub fn get_f32_array(&self, key: &str) -> Result<Vec<f32>> {
        let (_, bytes) = self.typed_array(key, ValueType::F32)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect())
    }

    /// An integer array of any integer element type, as i64.
    pub fn get_int_array(&self, key: &str) -> Result<Vec<i64>> {
        let a = self.get_array(key)?;
        let bytes = &self.bytes()[a.offset..a.offset + a.byte_len];
        let out: Vec<i64> = match a.elem {
            ValueType::U8 => bytes.iter().map(|&b| b as i64).collect(),
            ValueType::I8 => bytes.iter().map(|&b| b as i8 as i64).collect(),
            ValueType::U16 => bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
            ValueType::I16 => bytes
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
            ValueType::U32 => bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            ValueType::I32 => bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            ValueType::U64 => bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            ValueType::I64 => bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            other => {
                return Err(GgufError::new(format!(
                    "metadata key {key:?} is an array of {other}, expected an array of integers"
                )))
            }
        };
        Ok(out)
    }

    /// The value of `key` as an owned [`MetaValue`] (to copy metadata into another file).
    pub fn get_owned(&self, key: &str) -> Result<MetaValue> {
        let v = *self.require(key)?;
        Ok(self.to_owned_value(&v))
    }

    /// Convert a parsed value into an owned one.
    pub fn to_owned_value(&self, v: &Value) -> MetaValue {
        match *v {
            Value::U8(x) => MetaValue::U8(x),
            Value::I8(x) => MetaValue::I8(x),
            Value::U16(x) => MetaValue::U16(x),
            Value::I16(x) => MetaValue::I16(x),
            Value::U32(x) => MetaValue::U32(x),
            Value::I32(x) => MetaValue::I32(x),
            Value::F32(x) => MetaValue::F32(x),
            Value::Bool(x) => MetaValue::Bool(x),
            Value::U64(x) => MetaValue::U64(x),
            Value::I64(x) => MetaValue::I64(x),
            Value::F64(x) => MetaValue::F64(x),
            Value::String(s) => {
                MetaValue::String(self.bytes()[s.offset..s.offset + s.len].to_vec())
            }
            Value::Array(a) => {
                // Re-parse the elements from the validated bytes.
                let mut c = Cursor {
                    buf: self.bytes(),
                    pos: a.offset,
                };
                let items = (0..a.len)
                    .map(|_| {
                        let v = c
                            .value(a.elem, &|| String::new(), 1)
                            .expect("validated at open");
                        self.to_owned_value(&v)
                    })
                    .collect();
                MetaValue::Array(a.elem, items)
            }
        }
    }

    /// A short, human-readable rendering of a value (long arrays summarised).
    pub fn display_value(&self, v: &Value, max_items: usize) -> String {
        match *v {
            Value::String(s) => {
                let b = &self.bytes()[s.offset..s.offset + s.len];
                let text = String::from_utf8_lossy(b);
                if text.chars().count() > 120 {
                    let head: String = text.chars().take(117).collect();
                    format!("{head:?}... ({} bytes)", b.len())
                } else {
                    format!("{text:?}")
                }
            }
            Value::Array(a) => {
                let mut c = Cursor {
                    buf: self.bytes(),
                    pos: a.offset,
                };
                let shown: Vec<String> = (0..a.len.min(max_items))
                    .map(|_| {
                        let v = c
                            .value(a.elem, &|| String::new(), 1)
                            .expect("validated at open");
                        self.display_value(&v, 3)
                    })
                    .collect();
                let more = if a.len > max_items {
                    format!(", ... ({} total)", a.len)
                } else {
                    String::new()
                };
                format!("[{}{more}] ({} x {})", shown.join(", "), a.len, a.elem)
            }
            Value::U8(x) => x.to_string(),
            Value::I8(x) => x.to_string(),
            Value::U16(x) => x.to_string(),
            Value::I16(x) => x.to_string(),
            Value::U32(x) => x.to_string(),
            Value::I32(x) => x.to_string(),
            Value::U64(x) => x.to_string(),
            Value::I64(x) => x.to_string(),
            Value::F32(x) => x.to_string(),
            Value::F64(x) => x.to_string(),
            Value::Bool(x) => x.to_string(),
        }
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

/// Iterator over the elements of a string array, as raw bytes.
pub struct StrArrayIter<'a> {
    bytes: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> Iterator for StrArrayIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The array was validated at open: every length and string lies inside `bytes`.
        let len =
            u64::from_le_bytes(self.bytes[self.pos..self.pos + 8].try_into().unwrap()) as usize;
        let s = &self.bytes[self.pos + 8..self.pos + 8 + len];
        self.pos += 8 + len;
        Some(s)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for StrArrayIter<'_> {}
