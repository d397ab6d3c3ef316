//! The driver: a small crate under the workspace's target directory that depends on every package to
//! generate for and calls the `Codegen` library on their enums, so the files come from the same
//! `WsMessages` impls the server routes by. It shares the workspace's target directory, lock file,
//! profiles and patches, so its dependencies are the ones the workspace already built, and a second run
//! with nothing changed builds nothing.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::diagnostic::DiagnosticLevel;
use cargo_metadata::{Message, Metadata, Package};
use toml::{Table, Value};

use crate::failure::{Failure, Unresolved};
use crate::workspace::{Job, Origin};

const NAME: &str = "ws-codegen-driver";

/// An error rustc reported while building the driver: in which package, at which file and line.
struct CompileError {
    package: String,
    at: Option<(String, usize)>,
    rendered: String,
}

/// One line of the driver's `main.rs` that names a path from a package, and where that path came from.
struct Named {
    line: usize,
    job: usize,
    path: String,
    origin: Origin,
}

/// Builds the driver and runs it: the files of job `i` are written under `staging/i`.
pub(crate) fn run(
    metadata: &Metadata,
    jobs: &[Job],
    cargo: &Path,
    staging: &Path,
) -> Result<(), Failure> {
    let dir = metadata
        .target_directory
        .as_std_path()
        .join("ws-codegen")
        .join("driver");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Failure::Io { path, source }
    };
    std::fs::create_dir_all(dir.join("src")).map_err(io(&dir))?;
    write_if_changed(&dir.join("Cargo.toml"), &manifest(metadata, jobs)?)?;
    let (main, named) = main_rs(jobs);
    write_if_changed(&dir.join("src").join("main.rs"), &main)?;
    // The workspace's lock file, so the packages build with the versions they always do; kept once the
    // driver has added its own dependencies to it, until the workspace's changes.
    let lock = metadata.workspace_root.as_std_path().join("Cargo.lock");
    let own = dir.join("Cargo.lock");
    if modified(&lock).is_some() && modified(&lock) > modified(&own) {
        std::fs::copy(&lock, &own).map_err(io(&lock))?;
    }
    let exe = build(metadata, jobs, cargo, &dir, &named)?;
    if staging.exists() {
        std::fs::remove_dir_all(staging).map_err(io(staging))?;
    }
    let status = Command::new(&exe).arg(staging).status().map_err(io(&exe))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Driver)
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn write_if_changed(path: &Path, text: &str) -> Result<(), Failure> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    std::fs::write(path, text).map_err(|source| Failure::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn manifest(metadata: &Metadata, jobs: &[Job]) -> Result<String, Failure> {
    let mut package = Table::new();
    package.insert("name".into(), NAME.into());
    package.insert("version".into(), "0.0.0".into());
    package.insert("edition".into(), "2024".into());
    package.insert("publish".into(), false.into());
    let mut dependencies = Table::new();
    dependencies.insert("ws-codegen".into(), codegen_dependency(metadata)?.into());
    for (i, job) in jobs.iter().enumerate() {
        let mut dep = Table::new();
        dep.insert("package".into(), job.package.clone().into());
        dep.insert("path".into(), job.dir.display().to_string().into());
        dependencies.insert(format!("package_{i}"), dep.into());
    }
    let mut root = Table::new();
    root.insert("package".into(), package.into());
    root.insert("dependencies".into(), dependencies.into());
    // Its own workspace, so cargo does not take it for an undeclared member of the one above it.
    root.insert("workspace".into(), Table::new().into());
    for (key, value) in root_sections(metadata) {
        root.insert(key, value);
    }
    Ok(format!(
        "# Written by ws-codegen: it links the packages it generates for. Rewritten on every run.\n{}",
        toml::to_string(&root).unwrap_or_default()
    ))
}

/// The root manifest's `[profile]` and `[patch]` tables, so the driver builds what the workspace built,
/// with relative `path`s made absolute.
fn root_sections(metadata: &Metadata) -> Vec<(String, Value)> {
    let root = metadata.workspace_root.as_std_path();
    let Ok(text) = std::fs::read_to_string(root.join("Cargo.toml")) else {
        return Vec::new();
    };
    let Ok(table) = text.parse::<Table>() else {
        return Vec::new();
    };
    let mut sections = Vec::new();
    for key in ["profile", "patch"] {
        if let Some(mut value) = table.get(key).cloned() {
            absolute_paths(&mut value, root);
            sections.push((key.to_owned(), value));
        }
    }
    sections
}

fn absolute_paths(value: &mut Value, root: &Path) {
    let Value::Table(table) = value else {
        return;
    };
    for (key, value) in table.iter_mut() {
        match value {
            Value::String(path) if key == "path" => {
                *path = root.join(&*path).display().to_string();
            }
            Value::Table(_) => absolute_paths(value, root),
            _ => {}
        }
    }
}

/// How the driver depends on the `Codegen` library: as the workspace has it when it does, else from
/// where its `ws-core` comes from (a registry, git, or a checkout with `ws-codegen` beside `ws-core`), so
/// the message traits the driver calls are the ones the packages implement.
fn codegen_dependency(metadata: &Metadata) -> Result<Table, Failure> {
    let find = |name: &str| metadata.packages.iter().find(|p| p.name.as_str() == name);
    if let Some(codegen) = find("ws-codegen") {
        return Ok(source_of(codegen, None));
    }
    let core = find("ws-core").ok_or(Failure::NoCodegen { core: None })?;
    if core.source.is_none() {
        let beside = core
            .manifest_path
            .parent()
            .and_then(|dir| dir.parent())
            .map(|dir| dir.join("ws-codegen"));
        return match beside {
            Some(dir) if dir.join("Cargo.toml").exists() => {
                let mut dep = Table::new();
                dep.insert("path".into(), dir.to_string().into());
                Ok(dep)
            }
            _ => Err(Failure::NoCodegen {
                core: Some(core.manifest_path.clone().into()),
            }),
        };
    }
    Ok(source_of(core, Some("ws-codegen")))
}

/// A dependency on `package` (or on its sibling `rename` from the same source, at the same version).
fn source_of(package: &Package, rename: Option<&str>) -> Table {
    let mut dep = Table::new();
    if let Some(name) = rename {
        dep.insert("package".into(), name.into());
    }
    let Some(source) = &package.source else {
        let dir = package.manifest_path.parent().map(|d| d.to_string());
        dep.insert("path".into(), dir.unwrap_or_default().into());
        return dep;
    };
    let repr = source.repr.as_str();
    if let Some(git) = repr.strip_prefix("git+") {
        let (url, commit) = git.split_once('#').unwrap_or((git, ""));
        let url = url.split_once('?').map_or(url, |(url, _)| url);
        dep.insert("git".into(), url.into());
        dep.insert("rev".into(), commit.into());
        return dep;
    }
    dep.insert("version".into(), format!("={}", package.version).into());
    if !source.is_crates_io() {
        dep.insert("registry-index".into(), repr.into());
    }
    dep
}

/// The driver's `main.rs`, one path a line, and which line names what.
fn main_rs(jobs: &[Job]) -> (String, Vec<Named>) {
    let mut lines = vec![
        "//! Written by ws-codegen: generates the files of each package under `<staging>/<index>`.".to_owned(),
        String::new(),
        "fn main() -> std::process::ExitCode {".to_owned(),
        "    let staging = std::path::PathBuf::from(std::env::args_os().nth(1).expect(\"staging directory\"));".to_owned(),
        "    let jobs = [".to_owned(),
    ];
    let mut named = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let title = job
            .settings
            .title
            .clone()
            .unwrap_or_else(|| job.package.clone());
        lines.push(format!("        ws_codegen::Codegen::new({title:?})"));
        if let Some(route) = &job.settings.route {
            lines.push(format!("            .path({route:?})"));
        }
        if let Some(client) = &job.settings.client {
            lines.push(format!("            .client_package({client:?})"));
        }
        for (path, origin) in &job.enums {
            named.push(Named {
                line: lines.len() + 1,
                job: i,
                path: path.clone(),
                origin: origin.clone(),
            });
            lines.push(format!("            .messages::<package_{i}::{path}>()"));
        }
        if let Some(path) = &job.settings.presence {
            named.push(Named {
                line: lines.len() + 1,
                job: i,
                path: path.clone(),
                origin: Origin::Metadata { key: "presence" },
            });
            lines.push(format!("            .presence::<package_{i}::{path}>()"));
        }
        lines.push("            ,".to_owned());
    }
    lines.extend([
        "    ];".to_owned(),
        "    for (i, codegen) in jobs.iter().enumerate() {".to_owned(),
        "        if let Err(err) = codegen.write(staging.join(i.to_string())) {".to_owned(),
        "            eprintln!(\"error: {err}\");".to_owned(),
        "            return std::process::ExitCode::FAILURE;".to_owned(),
        "        }".to_owned(),
        "    }".to_owned(),
        "    std::process::ExitCode::SUCCESS".to_owned(),
        "}".to_owned(),
        String::new(),
    ]);
    (lines.join("\n"), named)
}

/// `cargo build` of the driver; the path of its executable, or what kept it from building, told in
/// the terms of the package that caused it.
fn build(
    metadata: &Metadata,
    jobs: &[Job],
    cargo: &Path,
    dir: &Path,
    named: &[Named],
) -> Result<PathBuf, Failure> {
    let mut child = Command::new(cargo)
        .arg("build")
        .arg("--message-format=json")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(metadata.target_directory.as_std_path())
        .current_dir(metadata.workspace_root.as_std_path())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|source| Failure::Io {
            path: cargo.to_path_buf(),
            source,
        })?;
    let stdout = child.stdout.take().expect("piped");
    let mut exe = None;
    let mut errors = Vec::new();
    for message in Message::parse_stream(BufReader::new(stdout)).flatten() {
        match message {
            Message::CompilerArtifact(artifact) if artifact.target.name == NAME => {
                exe = artifact.executable.map(PathBuf::from);
            }
            Message::CompilerMessage(msg)
                if matches!(msg.message.level, DiagnosticLevel::Error) =>
            {
                let span = msg.message.spans.iter().find(|s| s.is_primary);
                let at = span.map(|s| (s.file_name.clone(), s.line_start));
                let rendered = msg.message.rendered.clone().unwrap_or(msg.message.message);
                let package = metadata
                    .packages
                    .iter()
                    .find(|p| p.id == msg.package_id)
                    .map_or_else(|| NAME.to_owned(), |p| p.name.to_string());
                errors.push(CompileError {
                    package,
                    at,
                    rendered,
                });
            }
            _ => {}
        }
    }
    let status = child.wait().map_err(|source| Failure::Io {
        path: cargo.to_path_buf(),
        source,
    })?;
    match exe {
        Some(exe) if status.success() => Ok(exe),
        _ => Err(explain(jobs, named, errors)),
    }
}

fn explain(jobs: &[Job], named: &[Named], errors: Vec<CompileError>) -> Failure {
    let in_driver = errors.iter().find_map(|error| {
        let (file, line) = error.at.as_ref()?;
        if error.package != NAME || !file.ends_with("main.rs") {
            return None;
        }
        let named = named.iter().find(|n| n.line == *line)?;
        Some((named, &error.rendered))
    });
    if let Some((named, rendered)) = in_driver {
        let job = &jobs[named.job];
        return Failure::Unresolved(Box::new(Unresolved {
            package: job.package.clone(),
            manifest: job.manifest.clone(),
            path: named.path.clone(),
            origin: named.origin.clone(),
            rendered: rendered.clone(),
        }));
    }
    let Some(package) = errors
        .iter()
        .find(|e| e.package != NAME)
        .map(|e| e.package.clone())
    else {
        return Failure::Build;
    };
    let rendered = errors
        .into_iter()
        .filter(|e| e.package == package)
        .map(|e| e.rendered)
        .collect();
    Failure::Compile { package, rendered }
}
