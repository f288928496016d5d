//! The `.tern` writer (host only, behind the `std` feature).
//!
//! Lays out: preamble, header, zero padding to `data_offset`, the tokenizer blob, then every
//! tensor in table order, each at a 64-byte-aligned offset. Callers write to a temporary file
//! and rename it into place.

use std::io::{self, Write};

use super::*;

/// A tensor to write: its table entry fields and its data bytes.
#[derive(Clone, Debug)]
pub struct OwnedTensor {
    /// Name (GGUF style).
    pub name: String,
    /// Role.
    pub role: TensorRole,
    /// Layer (0 for globals).
    pub layer: u16,
    /// Layout.
    pub layout: Layout,
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub cols: u32,
    /// See [`TensorEntry::weight_scale`].
    pub weight_scale: f32,
    /// Data (`rows * layout.row_bytes(cols)` bytes).
    pub data: Vec<u8>,
}

/// Owned provenance strings.
#[derive(Clone, Debug, Default)]
pub struct OwnedProvenance {
    /// See [`Provenance::source`].
    pub source: String,
    /// See [`Provenance::source_format`].
    pub source_format: String,
    /// See [`Provenance::source_sha256`].
    pub source_sha256: [u8; 32],
    /// See [`Provenance::packer`].
    pub packer: String,
    /// See [`Provenance::options`].
    pub options: String,
}

/// Everything a `.tern` file holds, owned.
#[derive(Clone, Debug)]
pub struct OwnedModel {
    /// Hyper-parameters.
    pub config: ModelConfig,
    /// Tokenizer description; `offset`, `len` and `crc32` are filled in by the writer.
    pub tokenizer: TokenizerInfo,
    /// The tokenizer blob.
    pub tokenizer_blob: Vec<u8>,
    /// Default plan.
    pub plan: DefaultPlan,
    /// Provenance.
    pub provenance: OwnedProvenance,
    /// Tensors, in the order they will be written.
    pub tensors: Vec<OwnedTensor>,
}

fn align(x: u64) -> u64 {
    x.div_ceil(ALIGN_BYTES) * ALIGN_BYTES
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl OwnedModel {
    /// An owned copy of a parsed resident model: header fields, tokenizer blob and every
    /// tensor's entry and bytes, in table order (writing it back gives the same file when the
    /// source was written by this writer). For tools that rewrite a `.tern` file, e.g. to
    /// re-encode its ternary tensors in another layout.
    ///
    /// # Errors
    /// [`Error::UnknownLayout`] for an entry whose layout id this build does not know (not
    /// possible for a model that parsed).
    pub fn from_model(m: &Model<'_>) -> Result<OwnedModel, Error> {
        let h = &m.file.header;
        let mut tensors = Vec::new();
        for (i, e) in m.file.entries().enumerate() {
            let layout = Layout::from_id(e.layout).ok_or(Error::UnknownLayout {
                index: i as u32,
                layout: e.layout,
            })?;
            tensors.push(OwnedTensor {
                name: e.name.into(),
                role: e.role,
                layer: e.layer,
                layout,
                rows: e.rows,
                cols: e.cols,
                weight_scale: e.weight_scale,
                data: m.bytes[e.offset as usize..(e.offset + e.len) as usize].to_vec(),
            });
        }
        Ok(OwnedModel {
            config: h.config,
            tokenizer: h.tokenizer.clone(),
            tokenizer_blob: m.tokenizer_blob().to_vec(),
            plan: h.plan,
            provenance: OwnedProvenance {
                source: h.provenance.source.into(),
                source_format: h.provenance.source_format.into(),
                source_sha256: h.provenance.source_sha256,
                packer: h.provenance.packer.into(),
                options: h.provenance.options.into(),
            },
            tensors,
        })
    }

    /// Encode the preamble + header for data starting at `data_offset`; returns the bytes and
    /// the tokenizer info with offsets filled in.
    fn encode_header(&self, data_offset: u64) -> io::Result<Vec<u8>> {
        let mut tok = self.tokenizer.clone();
        tok.offset = data_offset;
        tok.len = self.tokenizer_blob.len() as u64;
        tok.crc32 = CRC32.checksum(&self.tokenizer_blob);
        let p = &self.provenance;
        let header = Header {
            config: self.config,
            tokenizer: tok,
            plan: self.plan,
            provenance: Provenance {
                source: &p.source,
                source_format: &p.source_format,
                source_sha256: p.source_sha256,
                packer: &p.packer,
                options: &p.options,
            },
            n_tensors: u32::try_from(self.tensors.len()).map_err(io_err)?,
        };
        let mut h = postcard::to_stdvec(&header).map_err(io_err)?;
        let mut off = align(data_offset + self.tokenizer_blob.len() as u64);
        for t in &self.tensors {
            let len = t.data.len() as u64;
            let e = TensorEntry {
                name: &t.name,
                role: t.role,
                layer: t.layer,
                layout: t.layout as u8,
                rows: t.rows,
                cols: t.cols,
                offset: off,
                len,
                weight_scale: t.weight_scale,
                crc32: CRC32.checksum(&t.data),
            };
            h.extend(postcard::to_stdvec(&e).map_err(io_err)?);
            off = align(off + len);
        }
        let pre = Preamble {
            version: VERSION,
            flags: 0,
            header_len: u32::try_from(h.len()).map_err(io_err)?,
            header_crc32: CRC32.checksum(&h),
            data_offset,
        };
        let mut out = pre.to_bytes().to_vec();
        out.extend(h);
        Ok(out)
    }

    /// Write the whole file to `w`, calling `progress(bytes_written)` after each tensor.
    /// Returns the number of bytes written.
    ///
    /// # Errors
    /// I/O errors from `w`, or `InvalidData` if a tensor's data length does not match its
    /// layout and shape.
    pub fn write(&self, mut w: impl Write, mut progress: impl FnMut(u64)) -> io::Result<u64> {
        for t in &self.tensors {
            let need = t
                .layout
                .row_bytes(t.cols as usize)
                .map(|rb| rb as u64 * t.rows as u64);
            if need != Some(t.data.len() as u64) {
                return Err(io_err(format!(
                    "tensor {}: {} bytes, layout and shape need {:?}",
                    t.name,
                    t.data.len(),
                    need
                )));
            }
        }
        // The header's size depends (through varints) on the offsets, which depend on the
        // header's size: iterate to a fixed point (two rounds in practice).
        let mut data_offset = align(PREAMBLE_BYTES as u64);
        let head = loop {
            let head = self.encode_header(data_offset)?;
            if head.len() as u64 <= data_offset {
                break head;
            }
            data_offset = align(head.len() as u64);
        };
        let mut pos = 0u64;
        let put = |w: &mut dyn Write, b: &[u8], pos: &mut u64| -> io::Result<()> {
            w.write_all(b)?;
            *pos += b.len() as u64;
            Ok(())
        };
        let zeros = [0u8; ALIGN_BYTES as usize];
        put(&mut w, &head, &mut pos)?;
        put(&mut w, &zeros[..(data_offset - pos) as usize], &mut pos)?;
        put(&mut w, &self.tokenizer_blob, &mut pos)?;
        for t in &self.tensors {
            let pad = (align(pos) - pos) as usize;
            put(&mut w, &zeros[..pad], &mut pos)?;
            put(&mut w, &t.data, &mut pos)?;
            progress(pos);
        }
        w.flush()?;
        Ok(pos)
    }
}
