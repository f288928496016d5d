//! Opening models: a `.tern` file is memory-mapped and read in place; a GGUF file or an HF
//! safetensors directory is packed once into a cache directory (with a progress bar) and the
//! cached `.tern` is reused on later runs.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use tern_core::format::Model;
use tern_mmap::{Mmap, MmapMut};
use tern_pack::pack::PackOptions;

/// A `.tern` file's bytes: memory-mapped and read in place, or read into anonymous memory
/// ([`MappedModel::read_into_memory`], `--no-mmap`).
#[derive(Debug)]
pub struct MappedModel {
    /// Path of the `.tern` file (the cache entry for GGUF/safetensors inputs).
    pub path: PathBuf,
    bytes: Held,
}

/// Where a [`MappedModel`]'s bytes are.
#[derive(Debug)]
enum Held {
    /// A read-only map of the file ([`tern_mmap::map`]).
    Mapped(Mmap),
    /// A private copy in an anonymous map advised to huge pages ([`tern_mmap::map_anon_huge`]).
    Read(MmapMut),
}

pub use tern_pack::import::tern::describe;

impl MappedModel {
    /// Map `path` (a `.tern` file) read-only.
    ///
    /// # Errors
    /// I/O errors, with the path.
    pub fn map(path: &Path) -> Result<MappedModel> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let map = tern_mmap::map(&file).with_context(|| format!("mapping {}", path.display()))?;
        Ok(MappedModel {
            path: path.to_path_buf(),
            bytes: Held::Mapped(map),
        })
    }

    /// Replace the map by a copy of the file read into anonymous memory advised
    /// `MADV_HUGEPAGE` (llama.cpp's `--no-mmap`). Decode streams every weight once per token,
    /// and the kernel gives a file map 2 MiB pages only for page-cache folios that are that
    /// large, often not all of them (0.5-1.0 of 1.1 GiB in this project's benchmark runs);
    /// anonymous memory gets them wherever THP is not off. On the 2-vCPU Zen 4 VM
    /// (2026-12-01, 2B4T shape with the F16_R8 head, tg64 at 1 thread, five alternating
    /// pairs) decode read this way ran 1.17-1.38x as fast as mapped. The cost: the whole file is read at start, and the
    /// copy is private memory that counts in the resident set and cannot be evicted like
    /// mapped file pages. `read(2)` fills it, so the file's pages are never mapped into this
    /// process (the page cache may keep them; the kernel drops them under memory pressure).
    /// A no-op when already read, and for an empty file (which parsing rejects either way).
    ///
    /// # Errors
    /// I/O errors and a file whose length changed since it was mapped, with the path.
    pub fn read_into_memory(&mut self) -> Result<()> {
        use std::io::Read;
        let Held::Mapped(map) = &self.bytes else {
            return Ok(());
        };
        if map.is_empty() {
            return Ok(());
        }
        let p = self.path.display();
        let mut copy = tern_mmap::map_anon_huge(map.len())
            .with_context(|| format!("{p}: cannot allocate {} bytes to read it into", map.len()))?;
        let mut file = std::fs::File::open(&self.path).with_context(|| format!("opening {p}"))?;
        file.read_exact(&mut copy)
            .with_context(|| format!("reading {p} ({} bytes expected)", map.len()))?;
        let mut extra = [0u8; 1];
        if file
            .read(&mut extra)
            .with_context(|| format!("reading {p}"))?
            != 0
        {
            bail!(
                "{p}: the file grew while it was being read (more than {} bytes)",
                map.len()
            );
        }
        self.bytes = Held::Read(copy);
        Ok(())
    }

    /// Whether the bytes are the file's map (false once [`Self::read_into_memory`] ran).
    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, Held::Mapped(_))
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Held::Mapped(m) => m,
            Held::Read(m) => m,
        }
    }

    /// Parse the mapped file (header, table, bounds) and, if `verify`, every CRC32.
    ///
    /// # Errors
    /// A message naming the file and tensor.
    pub fn model(&self, verify: bool) -> Result<Model<'_>> {
        let m = Model::parse(self.bytes()).map_err(|e| describe(&self.path, self.bytes(), e))?;
        if verify {
            m.verify_checksums()
                .map_err(|e| describe(&self.path, self.bytes(), e))?;
        }
        Ok(m)
    }
}

/// The model bundled into the `tern` binary, used when no MODEL is given: Tern's trained demo
/// model, a small BitNet b1.58 model with the 2B4T graph (4 layers, dim 256, FFN 768, 8/2
/// heads, a 4096-token byte-level BPE vocabulary) trained quantization-aware on the King James
/// Bible (public domain) — it writes KJV-style English. Made by `tools/train/train.py`
/// (PyTorch, deterministic; see `tools/train/README.md`), then `tern-pack pack tools/train/out
/// -o platforms/linux/assets/demo.tern`; `tests/tests/demo_model.rs` checks its greedy tokens
/// against the ones PyTorch recorded.
pub static BUNDLED_MODEL: &[u8] = include_bytes!("../assets/demo.tern");

/// Name shown for [`BUNDLED_MODEL`].
pub const BUNDLED_NAME: &str = "<bundled demo.tern>";

/// A model's bytes: a mapped file or the bundled model.
#[derive(Debug)]
pub enum ModelBytes {
    /// A memory-mapped `.tern` file.
    Mapped(MappedModel),
    /// [`BUNDLED_MODEL`].
    Bundled,
}

impl ModelBytes {
    /// Resolve `model` (None: the bundled model, re-packed into the cache once if `--lm-head`
    /// asks for another head) and map it.
    ///
    /// # Errors
    /// As [`resolve`] and [`MappedModel::map`].
    pub fn open(model: Option<&Path>, opts: &PackOptions, quiet: bool) -> Result<ModelBytes> {
        match model {
            None if opts.lm_head != tern_pack::pack::LmHead::Keep => Ok(ModelBytes::Mapped(
                MappedModel::map(&resolve_bundled(opts, quiet)?)?,
            )),
            None => Ok(ModelBytes::Bundled),
            Some(p) => Ok(ModelBytes::Mapped(MappedModel::map(&resolve(
                p, opts, quiet,
            )?)?)),
        }
    }
    /// [`MappedModel::read_into_memory`] for a file; the bundled model is already in memory.
    ///
    /// # Errors
    /// As [`MappedModel::read_into_memory`].
    pub fn read_into_memory(&mut self) -> Result<()> {
        match self {
            ModelBytes::Mapped(m) => m.read_into_memory(),
            ModelBytes::Bundled => Ok(()),
        }
    }
    /// How the bytes are held, for reports: `mapped` (the file's map), `read` (read into
    /// memory) or `bundled` (the binary's own [`BUNDLED_MODEL`]).
    pub fn holding(&self) -> &'static str {
        match self {
            ModelBytes::Mapped(m) if m.is_mapped() => "mapped",
            ModelBytes::Mapped(_) => "read",
            ModelBytes::Bundled => "bundled",
        }
    }
    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            ModelBytes::Mapped(m) => m.bytes(),
            ModelBytes::Bundled => BUNDLED_MODEL,
        }
    }
    /// A name for messages.
    pub fn name(&self) -> String {
        match self {
            ModelBytes::Mapped(m) => m.path.display().to_string(),
            ModelBytes::Bundled => BUNDLED_NAME.to_string(),
        }
    }
    /// Parse (and if `verify`, check every CRC32).
    ///
    /// # Errors
    /// A message naming the file and tensor.
    pub fn model(&self, verify: bool) -> Result<Model<'_>> {
        let name = PathBuf::from(self.name());
        let b = self.bytes();
        let m = Model::parse(b).map_err(|e| describe(&name, b, e))?;
        if verify {
            m.verify_checksums().map_err(|e| describe(&name, b, e))?;
        }
        Ok(m)
    }
}

/// Whether `path` is already a packed `.tern` file (by magic).
pub fn is_tern(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == tern_core::format::MAGIC
}

/// The cache directory: `$TERN_CACHE_DIR`, else `$XDG_CACHE_HOME/tern`, else `~/.cache/tern`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TERN_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("tern");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("tern")
}

fn fingerprint(input: &Path, opts: &PackOptions) -> Result<String> {
    let mut h = Sha256::new();
    let canon = input
        .canonicalize()
        .with_context(|| format!("{}", input.display()))?;
    h.update(canon.to_string_lossy().as_bytes());
    let mut files = vec![canon.clone()];
    if canon.is_dir() {
        files = std::fs::read_dir(&canon)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
    }
    for f in files {
        let md = std::fs::metadata(&f)?;
        let mtime = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        h.update(f.to_string_lossy().as_bytes());
        h.update(md.len().to_le_bytes());
        h.update(mtime.to_le_bytes());
    }
    h.update(format!("{:?}|{}", opts, env!("CARGO_PKG_VERSION")).as_bytes());
    Ok(h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The bundled model re-packed with `opts` (another LM head) into [`cache_dir`], once (keyed
/// by the bundled bytes' hash and the options).
///
/// # Errors
/// I/O errors.
fn resolve_bundled(opts: &PackOptions, quiet: bool) -> Result<PathBuf> {
    let mut h = Sha256::new();
    h.update(BUNDLED_MODEL);
    h.update(format!("{:?}|{}", opts, env!("CARGO_PKG_VERSION")).as_bytes());
    let fp: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = cache_dir();
    let out = dir.join(format!("demo-{fp}.tern"));
    if out.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating cache dir {}", dir.display()))?;
    if !quiet {
        eprintln!("packing {BUNDLED_NAME} -> {}", out.display());
    }
    let name = Path::new("demo.tern");
    let mut m = tern_pack::import::tern::import_tern_bytes(name, BUNDLED_MODEL, opts, &|_| {})?;
    tern_pack::import::apply_lm_head(&mut m, opts)?;
    tern_pack::pack::write_tern_atomic(&m, &out, |_| {})
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

/// Resolve a user-given MODEL to a `.tern` file: a `.tern` stays as is (unless `--lm-head`
/// asks for another LM head: then it is re-packed like other inputs); a GGUF file or a
/// safetensors directory is packed into [`cache_dir`] once (keyed by path, size, mtime and
/// options) and the cached file reused.
///
/// # Errors
/// Import errors (naming the file and tensor), I/O errors.
pub fn resolve(input: &Path, opts: &PackOptions, quiet: bool) -> Result<PathBuf> {
    if !input.exists() {
        return Err(anyhow!("{}: no such file or directory", input.display()));
    }
    if input.is_file() && is_tern(input) && opts.lm_head == tern_pack::pack::LmHead::Keep {
        return Ok(input.to_path_buf());
    }
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let dir = cache_dir();
    let out = dir.join(format!("{stem}-{}.tern", fingerprint(input, opts)?));
    if out.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating cache dir {}", dir.display()))?;
    if !quiet {
        eprintln!("packing {} -> {}", input.display(), out.display());
    }
    crate::generate::pack_with_progress(input, &out, opts, quiet)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_kernels::layout::TernaryLayout;
    use tern_pack::pack::LmHead;

    /// Every option that changes the packed bytes changes the cache key (a T1_160 pack must
    /// never be served for a T2_128 request, nor the other way round).
    #[test]
    fn cache_key_includes_the_pack_options() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.gguf");
        std::fs::write(&f, b"GGUF").unwrap();
        let key = |o: PackOptions| fingerprint(&f, &o).unwrap();
        let base = key(PackOptions::default());
        assert_eq!(base, key(PackOptions::default()));
        let t1 = key(PackOptions {
            ternary: TernaryLayout::T1_160,
            ..Default::default()
        });
        let q8 = key(PackOptions {
            lm_head: LmHead::Q8_0,
            ..Default::default()
        });
        let both = key(PackOptions {
            lm_head: LmHead::Q8_0,
            ternary: TernaryLayout::T1_160,
            ..Default::default()
        });
        let mut all = vec![base, t1, q8, both];
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 4);
    }

    /// `read_into_memory` holds the file's bytes (not the map's pages: a write to the file
    /// afterwards does not show), parses like the map, and refuses a file that grew.
    #[test]
    fn read_into_memory_copies_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("demo.tern");
        std::fs::write(&f, BUNDLED_MODEL).unwrap();
        let mut m = MappedModel::map(&f).unwrap();
        assert!(m.is_mapped());
        m.read_into_memory().unwrap();
        assert!(!m.is_mapped());
        assert!(m.bytes() == BUNDLED_MODEL);
        assert_eq!(
            m.model(true).unwrap().file.weight_bytes(),
            Model::parse(BUNDLED_MODEL).unwrap().file.weight_bytes()
        );
        std::fs::write(&f, vec![0u8; BUNDLED_MODEL.len()]).unwrap();
        assert!(m.bytes() == BUNDLED_MODEL, "a copy, not the file's pages");

        let mut grown = MappedModel::map(&f).unwrap();
        let mut longer = BUNDLED_MODEL.to_vec();
        longer.extend_from_slice(b"tail");
        std::fs::write(&f, &longer).unwrap();
        let e = grown.read_into_memory().unwrap_err().to_string();
        assert!(e.contains("demo.tern") && e.contains("grew"), "{e}");
        assert!(grown.is_mapped());
    }
}
