//! How a run fails: every failure told in the user's terms, with the fix where there is one.

use std::fmt;
use std::path::PathBuf;

use crate::discover::Found;
use crate::output;
use crate::workspace::Origin;

/// Every way a run can fail, each told in the user's terms (exit status 1, never a panic).
#[derive(Debug)]
pub(crate) enum Failure {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Metadata {
        manifest: PathBuf,
        message: String,
    },
    UnknownPackage {
        name: String,
        members: Vec<String>,
    },
    NoLibrary {
        package: String,
        found: Option<(PathBuf, usize)>,
    },
    NoEnums {
        looked: Vec<PathBuf>,
        package: Option<String>,
    },
    Source {
        package: String,
        file: PathBuf,
        message: String,
    },
    NotReachable {
        package: String,
        item: Box<Found>,
    },
    OutNeedsOnePackage {
        packages: Vec<String>,
    },
    NoCodegen {
        core: Option<PathBuf>,
    },
    Unresolved(Box<Unresolved>),
    Compile {
        package: String,
        rendered: String,
    },
    Build,
    Driver,
    Stale {
        files: Vec<output::StaleFile>,
        /// What the stale schema files change for clients built from the committed ones.
        changes: Vec<ws_codegen::compat::Change>,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", output::shown(path)),
            Self::Metadata { manifest, message } => {
                write!(f, "{}: {message}", output::shown(manifest))
            }
            Self::UnknownPackage { name, members } => write!(
                f,
                "no package `{name}` in this workspace; its members are: {}",
                members.join(", ")
            ),
            Self::NoLibrary { package, found } => {
                write!(f, "package `{package}` has no library target")?;
                if let Some((file, line)) = found {
                    write!(
                        f,
                        ", and declares #[ws_messages] enums in {}:{line}",
                        output::shown(file)
                    )?;
                }
                write!(
                    f,
                    ".\nws-codegen links a package's library to read its message enums: move them into \
                     src/lib.rs (or a module of it, e.g. `pub mod protocol;`) and `use` them from the binary."
                )
            }
            Self::NoEnums { looked, package } => {
                match package {
                    Some(name) => write!(f, "package `{name}` declares no #[ws_messages] enum")?,
                    None => write!(f, "no #[ws_messages] enum found in this workspace")?,
                }
                write!(
                    f,
                    ". Looked in the library of each package that depends on ws-core"
                )?;
                if looked.is_empty() {
                    write!(f, " (there is none)")?;
                }
                for file in looked {
                    write!(f, "\n  {} and its modules", output::shown(file))?;
                }
                write!(
                    f,
                    "\nEnums behind #[cfg], #[path] outside the crate or written by a macro are named in \
                     [package.metadata.ws-codegen] messages = [\"module::Enum\"]."
                )
            }
            Self::Source {
                package,
                file,
                message,
            } => write!(
                f,
                "cannot read package `{package}`'s source {}: {message}",
                output::shown(file)
            ),
            Self::NotReachable { package, item } => not_reachable(f, package, item),
            Self::OutNeedsOnePackage { packages } => write!(
                f,
                "--out takes one package, and {} have message enums ({}): add --package NAME",
                packages.len(),
                packages.join(", ")
            ),
            Self::NoCodegen { core: None } => {
                write!(f, "no package of this workspace depends on ws-core")
            }
            Self::NoCodegen { core: Some(core) } => write!(
                f,
                "ws-core comes from {}, and no ws-codegen is beside it: add ws-codegen as a dev-dependency \
                 of a member, from the same place, so the generator links the same ws-core",
                output::shown(core)
            ),
            Self::Unresolved(unresolved) => unresolved.fmt(f),
            Self::Compile { package, rendered } => {
                write!(f, "package `{package}` does not compile:\n{rendered}")
            }
            Self::Build => write!(
                f,
                "cargo could not build the generator's driver (see above)"
            ),
            Self::Driver => write!(f, "generating the files failed (see above)"),
            Self::Stale { files, changes } => {
                write!(f, "{} generated file(s) are out of date:", files.len())?;
                for file in files {
                    write!(f, "\n  {file}")?;
                }
                if !changes.is_empty() {
                    write!(f, "\nFor clients built from the committed files:")?;
                    for change in changes {
                        let kind = if change.breaking {
                            "breaking"
                        } else {
                            "compatible"
                        };
                        write!(f, "\n  {kind}: {}", change.text)?;
                    }
                }
                write!(f, "\nRun ws-codegen without --check to regenerate them.")
            }
        }
    }
}

/// A path the driver names that rustc could not use there.
#[derive(Debug)]
pub(crate) struct Unresolved {
    pub(crate) package: String,
    pub(crate) manifest: PathBuf,
    pub(crate) path: String,
    pub(crate) origin: Origin,
    pub(crate) rendered: String,
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            package,
            manifest,
            path,
            origin,
            rendered,
        } = self;
        match origin {
            Origin::Metadata { key } => write!(
                f,
                "`{key}` in [package.metadata.ws-codegen] of {}: `{path}` does not name a usable type \
                 of package `{package}` (paths start at the crate root, e.g. `protocol::Member`); \
                 rustc says:\n{rendered}",
                output::shown(manifest)
            ),
            Origin::Source { file, line } => write!(
                f,
                "the enum `{path}` found at {}:{line} cannot be used from outside package `{package}`; \
                 rustc says:\n{rendered}",
                output::shown(file)
            ),
        }
    }
}

fn not_reachable(f: &mut fmt::Formatter<'_>, package: &str, item: &Found) -> fmt::Result {
    let name = item.path.join("::");
    let at = format!("{}:{}", output::shown(&item.file), item.line);
    if !item.is_pub {
        return write!(
            f,
            "the #[ws_messages] enum `{name}` of package `{package}` ({at}) is not public: declare it \
             `pub enum`, so the generator can name it from outside the crate"
        );
    }
    let module = item
        .private_module
        .as_deref()
        .unwrap_or_default()
        .join("::");
    write!(
        f,
        "the #[ws_messages] enum `{name}` of package `{package}` ({at}) is not reachable from outside the \
         crate: module `{module}` is private. Declare it `pub mod`, or re-export the enum \
         (`pub use {name};`)"
    )
}
