//! GGUF: the reader (zero-copy over a memory map, validating everything it reads) and the writer.
//!
//! By file: `reader.rs` ([`Gguf`]: parsing and validating, tensors), `metadata.rs` (the typed
//! metadata getters), `memory.rs` (the file's bytes: mapping, locking, read-ahead, releasing
//! pages), `value.rs` (metadata values), `writer.rs` ([`GgufWriter`]), `file_type.rs`
//! (`general.file_type`).

mod file_type;
mod memory;
mod metadata;
mod reader;
mod value;
mod writer;

pub use file_type::{file_type_name, file_type_of, human_params};
pub use metadata::StrArrayIter;
pub use reader::{Gguf, TensorInfo, DEFAULT_ALIGNMENT, MAX_DIMS};
pub use value::{ArrayInfo, MetaValue, Span, Value, ValueType};
pub use writer::GgufWriter;

use std::fmt;

/// An error reading or writing a GGUF file, with a message that says what and where.
#[derive(Debug, Clone)]
pub struct GgufError(String);

impl GgufError {
    pub fn new(msg: impl Into<String>) -> GgufError {
        GgufError(msg.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GgufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GgufError {}

pub type Result<T> = std::result::Result<T, GgufError>;
