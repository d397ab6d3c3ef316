//! Finds the `#[ws_messages]` enums of a crate and the public path each is reachable by, from its source.
//!
//! Only *where* the enums are comes from the source: what they mean on the wire is read later from their
//! `WsMessages` impls, in the driver. The walk follows `mod` declarations from the crate root (`#[path]`
//! included), skips `#[cfg(...)]` items (whether they are compiled depends on features it cannot see), and
//! cannot see enums that a macro writes: those are named in the package's metadata instead.

use std::path::{Path, PathBuf};

use syn::{Attribute, Item, ItemUse, UseTree, Visibility};

/// An enum declared with `#[ws_messages]`.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// Its path from the crate root (`protocol::Inbound`), public or not.
    pub(crate) path: Vec<String>,
    /// The public path it is reachable by from outside the crate, when it has one.
    pub(crate) public_path: Option<Vec<String>>,
    /// Whether the enum itself is `pub`.
    pub(crate) is_pub: bool,
    /// The first private module on its path, when there is one.
    pub(crate) private_module: Option<Vec<String>>,
    pub(crate) file: PathBuf,
    pub(crate) line: usize,
}

/// A source file that could not be read or parsed.
#[derive(Debug)]
pub(crate) struct SourceError {
    pub(crate) file: PathBuf,
    pub(crate) message: String,
}

/// `pub use` items seen in public modules: (the module that re-exports, the path it names, the name
/// under which it re-exports, or `None` for a glob).
type ReExport = (Vec<String>, Vec<String>, Option<String>);

#[derive(Default)]
struct Walk {
    found: Vec<Found>,
    re_exports: Vec<ReExport>,
}

/// Every `#[ws_messages]` enum of the crate whose root file is `root`, in source order.
pub(crate) fn enums(root: &Path) -> Result<Vec<Found>, SourceError> {
    let mut walk = Walk::default();
    let dir = root.parent().unwrap_or(Path::new(".")).to_path_buf();
    walk.file(root, &dir, &[], None)?;
    let Walk {
        mut found,
        re_exports,
    } = walk;
    for item in &mut found {
        if item.public_path.is_none() && item.is_pub {
            item.public_path = re_exported(&item.path, &re_exports);
        }
    }
    Ok(found)
}

impl Walk {
    fn file(
        &mut self,
        file: &Path,
        child_dir: &Path,
        module: &[String],
        private: Option<&[String]>,
    ) -> Result<(), SourceError> {
        let error = |message: String| SourceError {
            file: file.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(file).map_err(|e| error(e.to_string()))?;
        let parsed = syn::parse_file(&text).map_err(|e| {
            let start = e.span().start();
            error(format!("{}:{}: {e}", start.line, start.column + 1))
        })?;
        self.items(&parsed.items, file, child_dir, module, private)
    }

    fn items(
        &mut self,
        items: &[Item],
        file: &Path,
        child_dir: &Path,
        module: &[String],
        private: Option<&[String]>,
    ) -> Result<(), SourceError> {
        for item in items {
            match item {
                Item::Enum(e) if !is_cfg(&e.attrs) && is_ws_messages(&e.attrs) => {
                    let mut path = module.to_vec();
                    path.push(e.ident.to_string());
                    let is_pub = is_pub(&e.vis);
                    self.found.push(Found {
                        public_path: (is_pub && private.is_none()).then(|| path.clone()),
                        path,
                        is_pub,
                        private_module: private.map(<[String]>::to_vec),
                        file: file.to_path_buf(),
                        line: e.ident.span().start().line,
                    });
                }
                Item::Mod(m) if !is_cfg(&m.attrs) => {
                    let mut inner = module.to_vec();
                    inner.push(m.ident.to_string());
                    let private = match private {
                        Some(p) => Some(p.to_vec()),
                        None if !is_pub(&m.vis) => Some(inner.clone()),
                        None => None,
                    };
                    let name = m.ident.to_string();
                    if let Some((_, content)) = &m.content {
                        self.items(
                            content,
                            file,
                            &child_dir.join(&name),
                            &inner,
                            private.as_deref(),
                        )?;
                    } else {
                        let (path, dir) = module_file(file, child_dir, &name, &m.attrs);
                        self.file(&path, &dir, &inner, private.as_deref())
                            .map_err(|e| SourceError {
                                message: format!(
                                    "{} (declared as `mod {name}` at {}:{})",
                                    e.message,
                                    file.display(),
                                    m.ident.span().start().line
                                ),
                                ..e
                            })?;
                    }
                }
                Item::Use(u) if private.is_none() && is_pub(&u.vis) && !is_cfg(&u.attrs) => {
                    self.re_exports.extend(flatten(u, module));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The file of an out-of-line `mod name;` declared in `file`, and the directory its own modules live in.
fn module_file(
    file: &Path,
    child_dir: &Path,
    name: &str,
    attrs: &[Attribute],
) -> (PathBuf, PathBuf) {
    if let Some(path) = attrs.iter().find_map(path_attr) {
        let path = file.parent().unwrap_or(Path::new(".")).join(path);
        let dir = path.with_extension("");
        return (path, dir);
    }
    let flat = child_dir.join(format!("{name}.rs"));
    if flat.exists() {
        (flat, child_dir.join(name))
    } else {
        let dir = child_dir.join(name);
        (dir.join("mod.rs"), dir)
    }
}

fn path_attr(attr: &Attribute) -> Option<String> {
    let syn::Meta::NameValue(nv) = &attr.meta else {
        return None;
    };
    if !nv.path.is_ident("path") {
        return None;
    }
    match &nv.value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Some(s.value()),
        _ => None,
    }
}

fn is_ws_messages(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "ws_messages")
    })
}

fn is_cfg(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("cfg"))
}

fn is_pub(vis: &Visibility) -> bool {
    matches!(vis, Visibility::Public(_))
}

fn flatten(item: &ItemUse, module: &[String]) -> Vec<ReExport> {
    fn walk(tree: &UseTree, prefix: &mut Vec<String>, module: &[String], out: &mut Vec<ReExport>) {
        match tree {
            UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                walk(&p.tree, prefix, module, out);
                prefix.pop();
            }
            UseTree::Name(n) => {
                let mut path = prefix.clone();
                path.push(n.ident.to_string());
                out.push((module.to_vec(), path, Some(n.ident.to_string())));
            }
            UseTree::Rename(r) => {
                let mut path = prefix.clone();
                path.push(r.ident.to_string());
                out.push((module.to_vec(), path, Some(r.rename.to_string())));
            }
            UseTree::Glob(_) => out.push((module.to_vec(), prefix.clone(), None)),
            UseTree::Group(g) => {
                for tree in &g.items {
                    walk(tree, prefix, module, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&item.tree, &mut Vec::new(), module, &mut out);
    out
}

/// `path` made absolute from the crate root, as written in a `use` of module `module`.
fn resolve(module: &[String], path: &[String]) -> Vec<String> {
    let mut base: Vec<String> = module.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        _ => {}
    }
    while rest.first().map(String::as_str) == Some("super") {
        base.pop();
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    base
}

/// The public path of an enum that a `pub use` in a public module re-exports.
fn re_exported(path: &[String], re_exports: &[ReExport]) -> Option<Vec<String>> {
    let (name, parent) = path.split_last()?;
    re_exports.iter().find_map(|(module, used, alias)| {
        let target = resolve(module, used);
        let mut public = module.clone();
        match alias {
            Some(alias) if target == path => public.push(alias.clone()),
            None if target == parent => public.push(name.clone()),
            _ => return None,
        }
        Some(public)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Source files in the system's temporary directory, removed when the test is done; derefs to the
    /// path of their `lib.rs`.
    struct Tree {
        dir: PathBuf,
        lib: PathBuf,
    }

    impl std::ops::Deref for Tree {
        type Target = Path;

        fn deref(&self) -> &Path {
            &self.lib
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn tree(name: &str, files: &[(&str, &str)]) -> Tree {
        let dir = std::env::temp_dir().join(format!("ws-codegen-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let lib = dir.join("lib.rs");
        Tree { dir, lib }
    }

    fn public(found: &[Found]) -> Vec<Option<String>> {
        found
            .iter()
            .map(|f| f.public_path.as_ref().map(|p| p.join("::")))
            .collect()
    }

    #[test]
    fn nested_modules_files_re_exports_and_cfg() {
        let root = tree(
            "nested",
            &[
                (
                    "lib.rs",
                    "pub mod api;\nmod hidden;\npub use hidden::{Renamed as Public, Plain};\n\
                 #[cfg(test)] mod tests { #[ws_messages] pub enum T {} }\n\
                 #[path = \"other/place.rs\"] pub mod moved;",
                ),
                (
                    "api.rs",
                    "pub mod wire { #[ws_core::ws_messages(outbound)] pub enum Out {} }\n\
                 #[ws_messages] enum Private {}",
                ),
                (
                    "hidden/mod.rs",
                    "#[ws_messages] pub enum Renamed {}\n#[ws_messages] pub enum Plain {}\n\
                 #[ws_messages] pub enum Lost {}",
                ),
                ("other/place.rs", "#[ws_messages] pub enum Moved {}"),
            ],
        );
        let found = enums(&root).unwrap();
        let paths: Vec<String> = found.iter().map(|f| f.path.join("::")).collect();
        assert_eq!(
            paths,
            [
                "api::wire::Out",
                "api::Private",
                "hidden::Renamed",
                "hidden::Plain",
                "hidden::Lost",
                "moved::Moved"
            ]
        );
        assert_eq!(
            public(&found),
            [
                Some("api::wire::Out".to_owned()),
                None,
                Some("Public".to_owned()),
                Some("Plain".to_owned()),
                None,
                Some("moved::Moved".to_owned())
            ]
        );
        assert_eq!(found[4].private_module, Some(vec!["hidden".to_owned()]));
        assert_eq!(found[0].line, 1);
        assert_eq!(found[1].line, 2);
    }

    #[test]
    fn a_glob_re_export_reaches_the_enums_of_a_private_module() {
        let root = tree(
            "glob",
            &[(
                "lib.rs",
                "mod protocol { #[ws_messages] pub enum In {} }\npub use self::protocol::*;",
            )],
        );
        assert_eq!(public(&enums(&root).unwrap()), [Some("In".to_owned())]);
    }

    #[test]
    fn a_missing_module_file_names_its_declaration() {
        let root = tree("missing", &[("lib.rs", "\npub mod gone;")]);
        let err = enums(&root).unwrap_err();
        assert!(
            err.message.contains("declared as `mod gone`"),
            "{}",
            err.message
        );
        assert!(err.message.contains("lib.rs:2"), "{}", err.message);
    }
}
