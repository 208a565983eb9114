//! The GGUF writer: metadata and tensors, with the data section and every tensor aligned.
//!
//! Tensors are described first (so offsets are known when the header is written) and their data
//! is then streamed in the same order, so multi-gigabyte files never sit in memory whole.

use super::reader::{DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
use super::value::MetaValue;
use super::{GgufError, Result};
use nib_simd::GgmlType;
use std::io::{self, Write};

struct PendingTensor {
    name: String,
    ty: GgmlType,
    dims: Vec<u64>,
    offset: u64,
    size: u64,
}

/// Builds a GGUF file (version 3).
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<PendingTensor>,
    data: Vec<Option<Vec<u8>>>,
    alignment: u64,
    next_offset: u64,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

fn write_str(w: &mut impl Write, s: &[u8]) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s)
}

fn write_value(w: &mut impl Write, v: &MetaValue) -> io::Result<()> {
    match v {
        MetaValue::U8(x) => w.write_all(&[*x]),
        MetaValue::I8(x) => w.write_all(&[*x as u8]),
        MetaValue::U16(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::I16(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::U32(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::I32(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::F32(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::Bool(x) => w.write_all(&[*x as u8]),
        MetaValue::U64(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::I64(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::F64(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::String(s) => write_str(w, s),
        MetaValue::Array(elem, items) => {
            w.write_all(&(*elem as u32).to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            for it in items {
                write_value(w, it)?;
            }
            Ok(())
        }
    }
}

/// A `Write` that counts bytes, to pad to the alignment.
struct Counting<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pad_to(w: &mut impl Write, pos: u64, align: u64) -> io::Result<u64> {
    let padded = pos.div_ceil(align) * align;
    let zeros = [0u8; 256];
    let mut left = padded - pos;
    while left > 0 {
        let k = left.min(zeros.len() as u64) as usize;
        w.write_all(&zeros[..k])?;
        left -= k as u64;
    }
    Ok(padded)
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter {
            metadata: Vec::new(),
            tensors: Vec::new(),
            data: Vec::new(),
            alignment: DEFAULT_ALIGNMENT,
            next_offset: 0,
        }
    }

    /// Set a metadata value (replacing an earlier one with the same key). Setting
    /// `general.alignment` (a u32 power of two) changes the alignment used for tensor data.
    pub fn set(&mut self, key: &str, value: MetaValue) -> Result<&mut Self> {
        if key == "general.alignment" {
            match value {
                MetaValue::U32(a) if a.is_power_of_two() => {
                    if !self.tensors.is_empty() {
                        return Err(GgufError::new(
                            "set general.alignment before adding tensors",
                        ));
                    }
                    self.alignment = a as u64;
                }
                _ => {
                    return Err(GgufError::new(
                        "general.alignment must be a u32 power of two",
                    ))
                }
            }
        }
        if let MetaValue::Array(elem, items) = &value {
            if items.iter().any(|i| i.value_type() != *elem) {
                return Err(GgufError::new(format!("array {key:?} mixes element types")));
            }
        }
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
        Ok(self)
    }

    /// Describe a tensor whose data will be passed to [`GgufWriter::write_tensor_data`] in order.
    pub fn add_tensor_info(&mut self, name: &str, ty: GgmlType, dims: &[u64]) -> Result<()> {
        if dims.is_empty() || dims.len() > MAX_DIMS {
            return Err(GgufError::new(format!(
                "tensor {name:?}: 1 to {MAX_DIMS} dimensions allowed"
            )));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(GgufError::new(format!("duplicate tensor name {name:?}")));
        }
        let bs = ty.block_size() as u64;
        if !dims[0].is_multiple_of(bs) {
            return Err(GgufError::new(format!(
                "tensor {name:?}: first dimension {} is not a multiple of the {ty} block size {bs}",
                dims[0]
            )));
        }
        let size = dims[1..]
            .iter()
            .try_fold(dims[0] / bs * ty.type_size() as u64, |a, &d| {
                a.checked_mul(d)
            })
            .ok_or_else(|| GgufError::new(format!("tensor {name:?} is too large")))?;
        let offset = self.next_offset;
        self.next_offset = (offset + size).div_ceil(self.alignment) * self.alignment;
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            ty,
            dims: dims.to_vec(),
            offset,
            size,
        });
        self.data.push(None);
        Ok(())
    }

    /// Describe a tensor and keep its data, for [`GgufWriter::write_to`].
    pub fn add_tensor(
        &mut self,
        name: &str,
        ty: GgmlType,
        dims: &[u64],
        data: Vec<u8>,
    ) -> Result<()> {
        self.add_tensor_info(name, ty, dims)?;
        let t = self.tensors.last().unwrap();
        if data.len() as u64 != t.size {
            let msg = format!(
                "tensor {name:?}: {} bytes given, {} expected",
                data.len(),
                t.size
            );
            self.tensors.pop();
            self.data.pop();
            return Err(GgufError::new(msg));
        }
        *self.data.last_mut().unwrap() = Some(data);
        Ok(())
    }

    /// Write header, metadata and tensor infos, padded up to the data section. Returns the
    /// bytes written.
    pub fn write_header(&self, w: &mut impl Write) -> io::Result<u64> {
        let mut c = Counting { inner: w, n: 0 };
        c.write_all(&GGUF_MAGIC)?;
        c.write_all(&3u32.to_le_bytes())?;
        c.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        c.write_all(&(self.metadata.len() as u64).to_le_bytes())?;
        for (k, v) in &self.metadata {
            write_str(&mut c, k.as_bytes())?;
            c.write_all(&(v.value_type() as u32).to_le_bytes())?;
            write_value(&mut c, v)?;
        }
        for t in &self.tensors {
            write_str(&mut c, t.name.as_bytes())?;
            c.write_all(&(t.dims.len() as u32).to_le_bytes())?;
            for d in &t.dims {
                c.write_all(&d.to_le_bytes())?;
            }
            c.write_all(&t.ty.id().to_le_bytes())?;
            c.write_all(&t.offset.to_le_bytes())?;
        }
        let n = c.n;
        pad_to(&mut c, n, self.alignment)
    }

    /// Write one tensor's data (tensors in the order they were added), padded to the alignment.
    pub fn write_tensor_data(
        &self,
        w: &mut impl Write,
        index: usize,
        data: &[u8],
    ) -> io::Result<()> {
        let t = &self.tensors[index];
        if data.len() as u64 != t.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "tensor {:?}: {} bytes given, {} expected",
                    t.name,
                    data.len(),
                    t.size
                ),
            ));
        }
        w.write_all(data)?;
        pad_to(w, t.size, self.alignment)?;
        Ok(())
    }

    /// Write the whole file; every tensor must have been added with [`GgufWriter::add_tensor`].
    pub fn write_to(&self, w: &mut impl Write) -> Result<()> {
        let io_err = |e: io::Error| GgufError::new(format!("write failed: {e}"));
        self.write_header(w).map_err(io_err)?;
        for (i, d) in self.data.iter().enumerate() {
            let d = d.as_ref().ok_or_else(|| {
                GgufError::new(format!("tensor {:?} has no data", self.tensors[i].name))
            })?;
            self.write_tensor_data(w, i, d).map_err(io_err)?;
        }
        Ok(())
    }

    /// The whole file as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.write_to(&mut v)?;
        Ok(v)
    }

    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }
}
