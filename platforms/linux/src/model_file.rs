//! Opening models: a `.tern` file is memory-mapped and read in place; a GGUF file or an HF
//! safetensors directory is packed once into a cache directory (with a progress bar) and the
//! cached `.tern` is reused on later runs.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result, anyhow};
use sha2::{Digest, Sha256};
use tern_core::format::Model;
use tern_mmap::Mmap;
use tern_pack::pack::PackOptions;

/// A memory-mapped `.tern` file.
#[derive(Debug)]
pub struct MappedModel {
    /// Path of the `.tern` file (the cache entry for GGUF/safetensors inputs).
    pub path: PathBuf,
    map: Mmap,
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
            map,
        })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Parse the mapped file (header, table, bounds) and, if `verify`, every CRC32.
    ///
    /// # Errors
    /// A message naming the file and tensor.
    pub fn model(&self, verify: bool) -> Result<Model<'_>> {
        let m = Model::parse(&self.map).map_err(|e| describe(&self.path, &self.map, e))?;
        if verify {
            m.verify_checksums()
                .map_err(|e| describe(&self.path, &self.map, e))?;
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
}
