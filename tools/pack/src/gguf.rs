//! A bounds-checked GGUF reader (versions 2 and 3).
//!
//! Source: ggml `docs/gguf.md` (GGUF v3): header `GGUF`, u32 version, u64 tensor count,
//! u64 metadata count, metadata key/values, tensor infos, then tensor data aligned to
//! `general.alignment` (default 32). All integers little-endian.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// uint8
    U8(u8),
    /// int8
    I8(i8),
    /// uint16
    U16(u16),
    /// int16
    I16(i16),
    /// uint32
    U32(u32),
    /// int32
    I32(i32),
    /// uint64
    U64(u64),
    /// int64
    I64(i64),
    /// float32
    F32(f32),
    /// float64
    F64(f64),
    /// bool
    Bool(bool),
    /// UTF-8 string
    Str(String),
    /// Array of values (one element type)
    Array(Vec<Value>),
}

impl Value {
    /// Integer value (any integer type, non-negative), or a bool as 0/1.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            Value::Bool(b) => Some(b as u64),
            _ => None,
        }
    }
    /// Signed integer value.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v as i64),
            Value::I16(v) => Some(v as i64),
            Value::I32(v) => Some(v as i64),
            Value::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }
    /// Float value (float or integer types).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }
    /// String value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// Bool value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    /// Array value.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// GGML tensor type ids (ggml.h `enum ggml_type`, plus bitnet.cpp's I2_S).
pub mod ggml_type {
    /// float32
    pub const F32: u32 = 0;
    /// float16
    pub const F16: u32 = 1;
    /// Q4_0: 32 values, f16 scale + 16 bytes of 4-bit codes.
    pub const Q4_0: u32 = 2;
    /// Q8_0: 32 values, f16 scale + 32 int8.
    pub const Q8_0: u32 = 8;
    /// Q6_K: 256 values in 210 bytes.
    pub const Q6_K: u32 = 14;
    /// bfloat16
    pub const BF16: u32 = 30;
    /// TQ1_0: ternary, 256 values in 54 bytes (base-3 packing).
    pub const TQ1_0: u32 = 34;
    /// TQ2_0: ternary, 256 values in 66 bytes (2-bit).
    pub const TQ2_0: u32 = 35;
    /// bitnet.cpp I2_S: ternary 2-bit, 128-value blocks, one f32 scale per tensor.
    pub const I2_S: u32 = 36;

    /// Standard name of a type id.
    pub fn name(t: u32) -> &'static str {
        match t {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            3 => "Q4_1",
            6 => "Q5_0",
            7 => "Q5_1",
            Q8_0 => "Q8_0",
            9 => "Q8_1",
            10 => "Q2_K",
            11 => "Q3_K",
            12 => "Q4_K",
            13 => "Q5_K",
            Q6_K => "Q6_K",
            15 => "Q8_K",
            BF16 => "BF16",
            TQ1_0 => "TQ1_0",
            TQ2_0 => "TQ2_0",
            I2_S => "I2_S",
            _ => "unknown",
        }
    }
}

/// One tensor's description.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in ggml order (`ne[0]` = innermost = columns).
    pub dims: Vec<u64>,
    /// GGML type id.
    pub ggml_type: u32,
    /// Offset relative to the start of the data section, bytes.
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements (None on overflow).
    pub fn n_elems(&self) -> Option<u64> {
        self.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
    }
}

/// A parsed GGUF file (metadata and tensor table; data is read by offset).
#[derive(Clone, Debug)]
pub struct GgufFile {
    /// GGUF version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    /// Tensor table in file order.
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section.
    pub data_offset: u64,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

const MAX_ARRAY: u64 = 1 << 28;
const MAX_STR: u64 = 1 << 26;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            bail!(
                "truncated GGUF: {what} at offset {} needs {n} bytes",
                self.pos
            )
        };
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().unwrap()))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().unwrap()))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        if n > MAX_STR {
            bail!("GGUF {what}: string length {n} is implausible");
        }
        let s = self.take(n as usize, what)?;
        String::from_utf8(s.to_vec()).with_context(|| format!("GGUF {what}: invalid UTF-8"))
    }
    fn value(&mut self, ty: u32, what: &str, depth: u32) -> Result<Value> {
        Ok(match ty {
            0 => Value::U8(self.take(1, what)?[0]),
            1 => Value::I8(self.take(1, what)?[0] as i8),
            2 => Value::U16(u16::from_le_bytes(self.take(2, what)?.try_into().unwrap())),
            3 => Value::I16(i16::from_le_bytes(self.take(2, what)?.try_into().unwrap())),
            4 => Value::U32(self.u32(what)?),
            5 => Value::I32(self.u32(what)? as i32),
            6 => Value::F32(f32::from_bits(self.u32(what)?)),
            7 => match self.take(1, what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => bail!("GGUF {what}: bool byte {b} is not 0 or 1"),
            },
            8 => Value::Str(self.string(what)?),
            9 => {
                if depth > 2 {
                    bail!("GGUF {what}: arrays nested too deeply");
                }
                let et = self.u32(what)?;
                let n = self.u64(what)?;
                if n > MAX_ARRAY || n > (self.b.len() - self.pos) as u64 {
                    bail!("truncated GGUF: {what}: array of {n} elements exceeds the file");
                }
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(self.value(et, what, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64(what)?),
            11 => Value::I64(self.u64(what)? as i64),
            12 => Value::F64(f64::from_bits(self.u64(what)?)),
            t => bail!("GGUF {what}: unknown metadata value type {t}"),
        })
    }
}

impl GgufFile {
    /// Parse the header, metadata and tensor table from `bytes` (the whole file, or at least
    /// its head). Tensor data bounds are checked by the importers against the file length.
    ///
    /// # Errors
    /// Bad magic, unsupported version, truncation, bad UTF-8, implausible counts.
    pub fn parse(bytes: &[u8]) -> Result<GgufFile> {
        let mut r = Reader { b: bytes, pos: 0 };
        let magic = r.take(4, "magic")?;
        if magic != b"GGUF" {
            bail!("not a GGUF file: magic is {magic:?}, expected \"GGUF\"");
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            bail!("GGUF version {version} is not supported (expected 2 or 3)");
        }
        let n_tensors = r.u64("tensor_count")?;
        let n_kv = r.u64("metadata_kv_count")?;
        if n_tensors > 1 << 20 || n_kv > 1 << 20 {
            bail!("GGUF header: implausible counts (tensors {n_tensors}, metadata {n_kv})");
        }
        let mut metadata = Vec::with_capacity(n_kv as usize);
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key #{i}"))?;
            let ty = r.u32(&key)?;
            let v = r.value(ty, &key, 0)?;
            metadata.push((key, v));
        }
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = r.string(&format!("tensor #{i} name"))?;
            let nd = r.u32(&name)?;
            if nd == 0 || nd > 4 {
                bail!("GGUF tensor {name}: {nd} dimensions (expected 1..4)");
            }
            let mut dims = Vec::new();
            for _ in 0..nd {
                dims.push(r.u64(&name)?);
            }
            let ggml_type = r.u32(&name)?;
            let offset = r.u64(&name)?;
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        let mut f = GgufFile {
            version,
            metadata,
            tensors,
            data_offset: 0,
        };
        let align = f
            .get("general.alignment")
            .and_then(Value::as_u64)
            .unwrap_or(32);
        if align == 0 || !align.is_power_of_two() || align > 1 << 16 {
            bail!("GGUF general.alignment = {align} is not a power of two");
        }
        f.data_offset = (r.pos as u64).div_ceil(align) * align;
        for t in &f.tensors {
            if t.offset % align != 0 {
                bail!(
                    "GGUF tensor {}: offset {} not aligned to {align}",
                    t.name,
                    t.offset
                );
            }
        }
        Ok(f)
    }

    /// Read a whole GGUF file and parse its metadata and tensor table (for vocab-only files and
    /// tests; importers map the file and call [`GgufFile::parse`]).
    ///
    /// # Errors
    /// I/O errors and everything [`GgufFile::parse`] reports, with the path.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        GgufFile::parse(&bytes).with_context(|| format!("{}", path.display()))
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A tensor by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv_str(out: &mut Vec<u8>, k: &str, v: &str) {
        out.extend((k.len() as u64).to_le_bytes());
        out.extend(k.as_bytes());
        out.extend(8u32.to_le_bytes());
        out.extend((v.len() as u64).to_le_bytes());
        out.extend(v.as_bytes());
    }

    #[test]
    fn parses_minimal_file_and_rejects_truncation() {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        kv_str(&mut b, "general.architecture", "bitnet");
        let name = "t";
        b.extend((name.len() as u64).to_le_bytes());
        b.extend(name.as_bytes());
        b.extend(2u32.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        let f = GgufFile::parse(&b).unwrap();
        assert_eq!(
            f.get("general.architecture").and_then(Value::as_str),
            Some("bitnet")
        );
        assert_eq!(f.tensors[0].dims, vec![4, 2]);
        assert_eq!(f.data_offset % 32, 0);
        for cut in 0..b.len() {
            assert!(GgufFile::parse(&b[..cut]).is_err(), "cut {cut}");
        }
        let mut bad = b.clone();
        bad[0] = b'X';
        assert!(
            GgufFile::parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
    }
}
