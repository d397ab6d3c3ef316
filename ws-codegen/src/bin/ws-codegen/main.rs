//! `ws-codegen`: generates the TypeScript client, JSON Schema and AsyncAPI document of every package of a
//! workspace that declares `#[ws_messages]` enums, or checks that the files on disk are up to date.
//!
//! ```text
//! cargo run -p ws-codegen                # in this repository
//! ws-codegen [--check] [--package NAME] [--out DIR] [--manifest-path PATH]
//! ```
//!
//! It finds the enums in each package's library source, then builds and runs a small driver crate that
//! links those libraries and calls the `Codegen` library on them: the files describe the `WsMessages`
//! impls the server routes by, never a second reading of serde's rules.

mod discover;
mod driver;
mod output;
mod workspace;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use cargo_metadata::MetadataCommand;

use crate::discover::Found;
use crate::workspace::Origin;

const USAGE: &str = "\
Generates the TypeScript client (client.ts, protocol.ts, validate.ts), JSON Schema and AsyncAPI document
of every workspace package whose library declares #[ws_messages] enums, into sdk/ beside its Cargo.toml.

Usage: ws-codegen [OPTIONS]

Options:
      --check                 Write nothing; fail naming every stale or missing file, and report which
                              changes break clients built from the committed files (exit status 2)
  -p, --package <NAME>        Only this package
      --out <DIR>             Write here instead (with one package)
      --manifest-path <PATH>  The workspace's Cargo.toml (default: the one cargo finds from here)
  -h, --help                  Print this help
  -V, --version               Print the version

Settings per package go in [package.metadata.ws-codegen]: title, path, out, presence, messages, client,
skip (see the ws-codegen crate docs).
";

/// The command line.
#[derive(Debug, Default)]
struct Args {
    check: bool,
    package: Option<String>,
    out: Option<PathBuf>,
    manifest_path: Option<PathBuf>,
}

fn parse_args() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args::default();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("check") => args.check = true,
            Short('p') | Long("package") => args.package = Some(parser.value()?.string()?),
            Long("out") => args.out = Some(parser.value()?.into()),
            Long("manifest-path") => args.manifest_path = Some(parser.value()?.into()),
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(None);
            }
            Short('V') | Long("version") => {
                println!("ws-codegen {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            match failure {
                Failure::Stale { changes, .. } if changes.iter().any(|c| c.breaking) => {
                    ExitCode::from(2)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn run(args: &Args) -> Result<(), Failure> {
    let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let mut command = MetadataCommand::new();
    command.cargo_path(&cargo);
    if let Some(path) = &args.manifest_path {
        command.manifest_path(path);
    }
    let metadata = command.exec().map_err(|err| Failure::Metadata {
        manifest: args
            .manifest_path
            .clone()
            .unwrap_or_else(|| "Cargo.toml".into()),
        message: err.to_string(),
    })?;
    let jobs = workspace::jobs(&metadata, args.package.as_deref())?;
    if args.out.is_some() && jobs.len() != 1 {
        return Err(Failure::OutNeedsOnePackage {
            packages: jobs.iter().map(|j| j.package.clone()).collect(),
        });
    }
    let staging = metadata
        .target_directory
        .as_std_path()
        .join("ws-codegen")
        .join("out");
    driver::run(&metadata, &jobs, &cargo, &staging)?;
    let mut stale = Vec::new();
    let mut changes = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let generated = staging.join(i.to_string());
        let out = job.out_dir(args.out.as_deref());
        if !args.check {
            output::write(&job.package, &generated, &out)?;
            continue;
        }
        let files = output::check(&job.package, &generated, &out)?;
        if !files.is_empty() {
            let found = ws_codegen::compat::compatibility(&out, &generated).map_err(|source| {
                Failure::Io {
                    path: out.clone(),
                    source,
                }
            })?;
            changes.extend(found.into_iter().map(|mut change| {
                change.text = format!("{}: {}", job.package, change.text);
                change
            }));
        }
        stale.extend(files);
    }
    if stale.is_empty() {
        Ok(())
    } else {
        changes.sort_by_key(|change| !change.breaking);
        Err(Failure::Stale {
            files: stale,
            changes,
        })
    }
}

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
