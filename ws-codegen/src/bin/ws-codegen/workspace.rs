//! The packages to generate for: the workspace's members that declare message enums, each with the
//! settings of its `[package.metadata.ws-codegen]` table.

use std::path::{Path, PathBuf};

use cargo_metadata::{DependencyKind, Metadata, Package, Target};
use serde_json::Value;

use crate::discover;
use crate::failure::Failure;

/// What the generator makes for one package.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) package: String,
    pub(crate) manifest: PathBuf,
    pub(crate) dir: PathBuf,
    pub(crate) settings: Settings,
    /// The message enums, each with where it was found or named.
    pub(crate) enums: Vec<(String, Origin)>,
}

/// Where a path written into the driver comes from, to explain an error that names its line.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// Found in the source.
    Source { file: PathBuf, line: usize },
    /// Named in `[package.metadata.ws-codegen]`.
    Metadata { key: &'static str },
}

/// `[package.metadata.ws-codegen]`.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    pub(crate) title: Option<String>,
    pub(crate) route: Option<String>,
    pub(crate) out: Option<String>,
    pub(crate) presence: Option<String>,
    pub(crate) messages: Vec<String>,
    pub(crate) client: Option<String>,
    pub(crate) skip: bool,
}

const KEYS: &[&str] = &[
    "title", "path", "out", "presence", "messages", "client", "skip",
];

impl Settings {
    fn of(package: &Package) -> Result<Self, Failure> {
        let bad = |message: String| Failure::Metadata {
            manifest: package.manifest_path.clone().into(),
            message,
        };
        let mut settings = Self::default();
        let Some(table) = package.metadata.get("ws-codegen") else {
            return Ok(settings);
        };
        let Some(table) = table.as_object() else {
            return Err(bad("`[package.metadata.ws-codegen]` must be a table".into()));
        };
        for (key, value) in table {
            let string = || {
                value
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("`{key}` must be a string")))
            };
            match key.as_str() {
                "title" => settings.title = Some(string()?),
                "path" => settings.route = Some(string()?),
                "out" => settings.out = Some(string()?),
                "presence" => settings.presence = Some(string()?),
                "client" => settings.client = Some(string()?),
                "skip" => {
                    settings.skip = value
                        .as_bool()
                        .ok_or_else(|| bad("`skip` must be true or false".into()))?;
                }
                "messages" => {
                    settings.messages = strings(value).ok_or_else(|| {
                        bad(
                            "`messages` must be a list of paths, e.g. [\"protocol::Inbound\"]"
                                .into(),
                        )
                    })?
                }
                other => {
                    return Err(bad(format!(
                        "unknown key `{other}` (known: {})",
                        KEYS.join(", ")
                    )));
                }
            }
        }
        Ok(settings)
    }
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// The jobs for the workspace's members, or for the one named by `--package`.
pub(crate) fn jobs(metadata: &Metadata, only: Option<&str>) -> Result<Vec<Job>, Failure> {
    let members = metadata.workspace_packages();
    let selected: Vec<&Package> = match only {
        Some(name) => {
            let package = members
                .iter()
                .find(|p| p.name.as_str() == name)
                .ok_or_else(|| Failure::UnknownPackage {
                    name: name.to_owned(),
                    members: members.iter().map(|p| p.name.to_string()).collect(),
                })?;
            vec![*package]
        }
        None => members.into_iter().filter(|p| uses_ws_core(p)).collect(),
    };
    let mut jobs = Vec::new();
    let mut looked = Vec::new();
    for package in selected {
        let settings = Settings::of(package)?;
        if settings.skip && only.is_none() {
            continue;
        }
        let Some(lib) = package.targets.iter().find(|t| is_linkable_lib(t)) else {
            refuse_binary_only(package, only.is_some())?;
            continue;
        };
        looked.push(lib.src_path.clone().into_std_path_buf());
        if let Some(job) = job(package, lib, settings)? {
            jobs.push(job);
        }
    }
    match only {
        Some(name) if jobs.is_empty() => Err(Failure::NoEnums {
            looked,
            package: Some(name.to_owned()),
        }),
        None if jobs.is_empty() => Err(Failure::NoEnums {
            looked,
            package: None,
        }),
        _ => Ok(jobs),
    }
}

fn uses_ws_core(package: &Package) -> bool {
    package
        .dependencies
        .iter()
        .any(|d| d.name == "ws-core" && d.kind == DependencyKind::Normal)
}

fn is_linkable_lib(target: &Target) -> bool {
    target.is_lib() || target.is_rlib()
}

/// A package without a library cannot be linked by the driver: an error when it was asked for, or when
/// its binaries declare enums (which would otherwise be left out without a word).
fn refuse_binary_only(package: &Package, asked: bool) -> Result<(), Failure> {
    let declared = package
        .targets
        .iter()
        .filter(|t| t.is_bin())
        .filter_map(|t| discover::enums(t.src_path.as_std_path()).ok())
        .flatten()
        .next();
    if asked || declared.is_some() {
        return Err(Failure::NoLibrary {
            package: package.name.to_string(),
            found: declared.map(|f| (f.file, f.line)),
        });
    }
    Ok(())
}

fn job(package: &Package, lib: &Target, settings: Settings) -> Result<Option<Job>, Failure> {
    let found = discover::enums(lib.src_path.as_std_path()).map_err(|e| Failure::Source {
        package: package.name.to_string(),
        file: e.file,
        message: e.message,
    })?;
    let mut enums = Vec::new();
    for item in found {
        let Some(public) = &item.public_path else {
            return Err(Failure::NotReachable {
                package: package.name.to_string(),
                item: Box::new(item),
            });
        };
        enums.push((
            public.join("::"),
            Origin::Source {
                file: item.file,
                line: item.line,
            },
        ));
    }
    for path in &settings.messages {
        if !enums.iter().any(|(p, _)| p == path) {
            enums.push((path.clone(), Origin::Metadata { key: "messages" }));
        }
    }
    if enums.is_empty() {
        return Ok(None);
    }
    let manifest: PathBuf = package.manifest_path.clone().into();
    Ok(Some(Job {
        package: package.name.to_string(),
        dir: manifest.parent().unwrap_or(Path::new(".")).to_path_buf(),
        manifest,
        settings,
        enums,
    }))
}

impl Job {
    /// Where the files go: `--out`, else the metadata's `out`, else `sdk/` beside the manifest.
    pub(crate) fn out_dir(&self, out: Option<&Path>) -> PathBuf {
        match (out, &self.settings.out) {
            (Some(out), _) => out.to_path_buf(),
            (None, Some(out)) => self.dir.join(out),
            (None, None) => self.dir.join("sdk"),
        }
    }
}
