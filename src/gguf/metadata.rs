//! Reading a GGUF file's metadata: typed getters that name the key and the type found when it
//! does not fit, owned copies, and a short rendering for people.

use super::reader::{Cursor, Gguf};
use super::value::{ArrayInfo, MetaValue, Value, ValueType};
use super::{GgufError, Result};

impl Gguf {
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
