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
mod failure;
mod output;
mod workspace;

use std::path::PathBuf;
use std::process::ExitCode;

use cargo_metadata::MetadataCommand;

use crate::failure::Failure;

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
