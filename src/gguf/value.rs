//! GGUF metadata value types: borrowed views over the mapped file ([`Value`]) and owned values
//! for writing ([`MetaValue`]).

use std::fmt;

/// The on-disk type tag of a metadata value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Bytes per value for fixed-size types; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A byte range of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

/// A metadata array: its element type, length and where its elements start in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArrayInfo {
    pub elem: ValueType,
    pub len: usize,
    /// Where the first element starts (after the array's type tag and length).
    pub offset: usize,
    /// Bytes taken by all elements.
    pub byte_len: usize,
}

/// Declares a metadata value enum with one variant per [`ValueType`] (the scalars holding their
/// value, `String` and `Array` what is given), and its `value_type`.
macro_rules! value_enum {
    (
        $(#[$attr:meta])*
        $name:ident {
            $(#[$s_attr:meta])* String($s:ty),
            $(#[$a_attr:meta])* Array($($a:ty),+),
        }
    ) => {
        $(#[$attr])*
        pub enum $name {
            U8(u8),
            I8(i8),
            U16(u16),
            I16(i16),
            U32(u32),
            I32(i32),
            F32(f32),
            Bool(bool),
            $(#[$s_attr])* String($s),
            $(#[$a_attr])* Array($($a),+),
            U64(u64),
            I64(i64),
            F64(f64),
        }

        impl $name {
            /// The value's type tag.
            pub fn value_type(&self) -> ValueType {
                match self {
                    $name::U8(_) => ValueType::U8,
                    $name::I8(_) => ValueType::I8,
                    $name::U16(_) => ValueType::U16,
                    $name::I16(_) => ValueType::I16,
                    $name::U32(_) => ValueType::U32,
                    $name::I32(_) => ValueType::I32,
                    $name::F32(_) => ValueType::F32,
                    $name::Bool(_) => ValueType::Bool,
                    $name::String(_) => ValueType::String,
                    $name::Array(..) => ValueType::Array,
                    $name::U64(_) => ValueType::U64,
                    $name::I64(_) => ValueType::I64,
                    $name::F64(_) => ValueType::F64,
                }
            }
        }
    };
}

value_enum! {
    /// A parsed metadata value. Strings and arrays refer to the file's bytes and are read on
    /// demand.
    #[derive(Clone, Copy, Debug, PartialEq)]
    Value {
        String(Span),
        Array(ArrayInfo),
    }
}

impl Value {
    /// The value as a signed integer, for any integer type.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v as i128,
            Value::I8(v) => v as i128,
            Value::U16(v) => v as i128,
            Value::I16(v) => v as i128,
            Value::U32(v) => v as i128,
            Value::I32(v) => v as i128,
            Value::U64(v) => v as i128,
            Value::I64(v) => v as i128,
            _ => return None,
        })
    }

    /// The value as a float, for the float types.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }
}

value_enum! {
    /// An owned metadata value, for the writer (and for copying metadata between files).
    #[derive(Clone, Debug, PartialEq)]
    MetaValue {
        /// Raw bytes (GGUF strings are meant to be UTF-8, but vocabularies may hold any bytes).
        String(Vec<u8>),
        /// An array of values that all have type `elem` (arrays of arrays are allowed by the
        /// format).
        Array(ValueType, Vec<MetaValue>),
    }
}

impl MetaValue {
    pub fn str(s: &str) -> MetaValue {
        MetaValue::String(s.as_bytes().to_vec())
    }

    pub fn str_array<S: AsRef<[u8]>>(items: impl IntoIterator<Item = S>) -> MetaValue {
        MetaValue::Array(
            ValueType::String,
            items
                .into_iter()
                .map(|s| MetaValue::String(s.as_ref().to_vec()))
                .collect(),
        )
    }

    pub fn f32_array(items: impl IntoIterator<Item = f32>) -> MetaValue {
        MetaValue::Array(
            ValueType::F32,
            items.into_iter().map(MetaValue::F32).collect(),
        )
    }

    pub fn i32_array(items: impl IntoIterator<Item = i32>) -> MetaValue {
        MetaValue::Array(
            ValueType::I32,
            items.into_iter().map(MetaValue::I32).collect(),
        )
    }
}
