//! The kernel cache: each family's parsed module (naga's IR) kept on disk between runs, so
//! a start-up skips unrolling and parsing. The software family's unrolled source is 3.2 MB
//! of WGSL, which naga takes seconds to parse on a CPU that a postcard copy of the parsed
//! module loads in a small fraction of (README, "Start-up").
//!
//! One file per family and storage: `<dir>/kernels-<family>-<reads>-<key>.bin`, where the
//! key hashes everything the module is made from (the generated header, the shader files,
//! this crate's version, and `LENET_KERNEL_BUILD`, a hash of Cargo.lock and the unroller
//! made by build.rs), so a changed kernel, unroller or naga never meets an old file. The
//! file holds a magic tag, the SHA-256 of its payload and the payload; one that is short,
//! damaged or unreadable is a miss, and the module is parsed and written again. Files are
//! written to a temporary name and renamed, so a reader never sees half of one. A cache
//! that cannot be written is only slower.
//!
//! Where: `LENET_KERNEL_CACHE` (a folder, or `off`), else `$XDG_CACHE_HOME/lenet-gpu`, else
//! `$HOME/.cache/lenet-gpu`.

use super::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"LNTKRNL1";

/// The folder of the cache, or None where it is off or no home is known.
pub fn dir() -> Option<PathBuf> {
    match std::env::var_os("LENET_KERNEL_CACHE") {
        Some(v) if v == "off" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|d| d.join("lenet-gpu")),
    }
}

/// The family's module for `reads`: from the cache in `dir` when it holds it, else parsed
/// (and then written there).
pub(super) fn module(
    dir: Option<&Path>,
    reads: Reads,
    family: Family,
) -> std::result::Result<naga::Module, String> {
    let path = dir.map(|d| d.join(file_name(reads, family)));
    if let Some(m) = path.as_deref().and_then(load) {
        return Ok(m);
    }
    let code = module_source(reads, family);
    let module = naga::front::wgsl::parse_str(&code).map_err(|e| e.emit_to_string(&code))?;
    drop(code);
    if let Some(p) = path {
        // A cache that cannot be written costs the next start-up its parse, nothing else.
        let _ = store(&p, &module);
    }
    Ok(module)
}

/// `kernels-<family>-<reads>-<key>.bin`.
pub(super) fn file_name(reads: Reads, family: Family) -> String {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    h.update(env!("LENET_KERNEL_BUILD"));
    h.update(module_text(reads, family));
    let key: String = h.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "kernels-{}-{}-{key}.bin",
        family.name(),
        format!("{reads:?}").to_lowercase()
    )
}

/// The module from `path`, or None (a miss) for a file that is missing, short, damaged or
/// not a module.
pub(super) fn load(path: &Path) -> Option<naga::Module> {
    let bytes = std::fs::read(path).ok()?;
    let payload = bytes.strip_prefix(MAGIC.as_slice())?;
    let (sum, payload) = payload.split_at_checked(32)?;
    if Sha256::digest(payload).as_slice() != sum {
        return None;
    }
    postcard::from_bytes(payload).ok()
}

/// Writes `module` to `path` through a temporary file in the same folder.
pub(super) fn store(path: &Path, module: &naga::Module) -> std::io::Result<()> {
    let payload = postcard::to_stdvec(module).map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + 32 + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&Sha256::digest(&payload));
    bytes.extend_from_slice(&payload);
    let dir = path.parent().unwrap_or(Path::new("."));
    // The user's alone: the files become kernels run without bounds checks.
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)?;
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    // A name of this process and call: tests write the same file from several threads.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    remove_older(path);
    Ok(())
}

/// Removes the files of the same family and storage with another key (a changed kernel or
/// build): only the newest is read again.
fn remove_older(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    // kernels-<family>-<reads>-<key>.bin
    let Some(stem) = name.rsplit_once('-').map(|(s, _)| format!("{s}-")) else {
        return;
    };
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let other = entry.file_name();
        let other = other.to_string_lossy();
        if other != name && other.starts_with(&stem) && other.ends_with(".bin") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lenet-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn spirv(m: &naga::Module, family: Family) -> Vec<Vec<u32>> {
        spirv_kernels(m, family)
            .unwrap()
            .into_iter()
            .map(|(w, _)| w)
            .collect()
    }

    /// A module read back from the cache gives every kernel's SPIR-V word for word as the
    /// freshly parsed one, for each family; a second call reads the file (no parse).
    #[test]
    fn cached_modules_translate_as_parsed_ones() {
        let dir = tmp("same");
        for (reads, family) in [
            (Reads::Storage, Family::Hardware),
            (Reads::Storage, Family::Simple),
            (Reads::Textures, Family::Software),
        ] {
            let fresh = module(Some(&dir), reads, family).unwrap();
            let path = dir.join(file_name(reads, family));
            let cached = load(&path).expect("the first call writes the cache");
            assert_eq!(spirv(&fresh, family), spirv(&cached, family), "{family:?}");
            let again = module(Some(&dir), reads, family).unwrap();
            assert_eq!(spirv(&again, family), spirv(&fresh, family), "{family:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A damaged, truncated or foreign file is a miss, and the next call writes a good one.
    #[test]
    fn a_damaged_cache_file_is_parsed_again() {
        let dir = tmp("damaged");
        let (reads, family) = (Reads::Storage, Family::Hardware);
        let want = spirv(&module(Some(&dir), reads, family).unwrap(), family);
        let path = dir.join(file_name(reads, family));
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        for bad in [
            flipped,
            good[..good.len() / 2].to_vec(),
            b"not a cache".to_vec(),
            Vec::new(),
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert!(load(&path).is_none());
            assert_eq!(
                spirv(&module(Some(&dir), reads, family).unwrap(), family),
                want
            );
            assert_eq!(std::fs::read(&path).unwrap(), good, "rewritten");
        }
        // A file of an older key is removed when a new one is written.
        let old = dir.join(file_name(reads, family).replace("-storage-", "-storage-0"));
        std::fs::write(&old, b"an older build's module").unwrap();
        std::fs::remove_file(&path).unwrap();
        module(Some(&dir), reads, family).unwrap();
        assert!(path.exists() && !old.exists());
        // Another family, storage or source has another file.
        assert_ne!(
            file_name(Reads::Storage, Family::Hardware),
            file_name(Reads::Storage, Family::Simple)
        );
        assert_ne!(
            file_name(Reads::Storage, Family::Software),
            file_name(Reads::Textures, Family::Software)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An unwritable folder only costs the parse.
    #[test]
    fn an_unwritable_cache_still_gives_the_module() {
        let file = tmp("unwritable");
        std::fs::write(&file, b"a file, not a folder").unwrap();
        let (reads, family) = (Reads::Storage, Family::Hardware);
        let m = module(Some(&file), reads, family).unwrap();
        assert_eq!(
            spirv(&m, family),
            spirv(&module(None, reads, family).unwrap(), family)
        );
        std::fs::remove_file(&file).unwrap();
    }
}
