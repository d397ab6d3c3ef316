//! Puts the generated files in place, or compares them with what is there. Only files that differ are
//! written; a per-message schema whose message is gone is removed (those two folders hold generated
//! files only).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::failure::Failure;

/// The folders whose every file is generated, so a file there that is not generated any more is stale.
const GENERATED_DIRS: &[&str] = &["schema/client-to-server", "schema/server-to-client"];

/// How a file on disk differs from what would be generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Differs,
    Missing,
    Obsolete,
}

/// A file that is not what would be generated.
#[derive(Debug)]
pub(crate) struct StaleFile {
    path: PathBuf,
    why: Why,
}

impl fmt::Display for StaleFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.why {
            Why::Differs => "differs",
            Why::Missing => "missing",
            Why::Obsolete => "not generated any more",
        };
        write!(f, "{} ({why})", shown(&self.path))
    }
}

/// `path` relative to the current directory when it is under it.
pub(crate) fn shown(path: &Path) -> String {
    let here = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&here)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every file under `dir`, relative to it, sorted.
fn files(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let entries = match std::fs::read_dir(&next) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(Failure::Io { path: next, source }),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                out.push(relative.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What differs between `generated` and `out`: (relative path, why) for each stale file; says so when
/// nothing does.
fn differences(
    package: &str,
    generated: &Path,
    out: &Path,
) -> Result<Vec<(PathBuf, Why)>, Failure> {
    let made = files(generated)?;
    let mut stale = Vec::new();
    for file in &made {
        let new = std::fs::read(generated.join(file)).map_err(|source| Failure::Io {
            path: generated.join(file),
            source,
        })?;
        match std::fs::read(out.join(file)) {
            Ok(old) if old == new => {}
            Ok(_) => stale.push((file.clone(), Why::Differs)),
            Err(_) => stale.push((file.clone(), Why::Missing)),
        }
    }
    for dir in GENERATED_DIRS {
        for file in files(&out.join(dir))? {
            let file = Path::new(dir).join(file);
            if !made.contains(&file) {
                stale.push((file, Why::Obsolete));
            }
        }
    }
    if stale.is_empty() {
        println!(
            "{package}: the {} generated files in {} are up to date",
            made.len(),
            shown(out)
        );
    }
    Ok(stale)
}

/// The stale files of one package, written nowhere.
pub(crate) fn check(
    package: &str,
    generated: &Path,
    out: &Path,
) -> Result<Vec<StaleFile>, Failure> {
    Ok(differences(package, generated, out)?
        .into_iter()
        .map(|(file, why)| StaleFile {
            path: out.join(file),
            why,
        })
        .collect())
}

/// Writes (or removes) each stale file of one package, naming each.
pub(crate) fn write(package: &str, generated: &Path, out: &Path) -> Result<(), Failure> {
    for (file, why) in differences(package, generated, out)? {
        let target = out.join(&file);
        let io = |source| Failure::Io {
            path: target.clone(),
            source,
        };
        if why == Why::Obsolete {
            std::fs::remove_file(&target).map_err(io)?;
            println!("removed {}", shown(&target));
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::copy(generated.join(&file), &target).map_err(io)?;
        println!("wrote {}", shown(&target));
    }
    Ok(())
}
