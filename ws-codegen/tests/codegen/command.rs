//! The `ws-codegen` command as a user meets it: run in a workspace of their own, outside this repository,
//! with no settings, it finds the enums, writes an SDK that `tsc` holds frontend code to, checks it, and
//! answers each kind of bad input with a message and exit status 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The runs share one target directory (and so one driver crate): one at a time.
static RUNS: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A user's workspace in the system's temporary directory, removed when the test is done with it.
struct Workspace(PathBuf);

impl std::ops::Deref for Workspace {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new workspace under the system's temporary directory, with the repository's profiles and lock file
/// (what a user's workspace that depends on ws-core has), and `members` written file by file.
fn workspace(name: &str, members: &[(&str, &[(&str, &str)])]) -> Workspace {
    let root = std::env::temp_dir().join(format!("ws-codegen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let repo_manifest: toml::Table = std::fs::read_to_string(repo().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let mut manifest = toml::Table::new();
    let mut ws = toml::Table::new();
    ws.insert("resolver".into(), "3".into());
    let names: Vec<toml::Value> = members.iter().map(|(m, _)| (*m).into()).collect();
    ws.insert("members".into(), names.into());
    manifest.insert("workspace".into(), ws.into());
    manifest.insert("profile".into(), repo_manifest["profile"].clone());
    write(&root, "Cargo.toml", &toml::to_string(&manifest).unwrap());
    std::fs::copy(repo().join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
    let core = repo().join("ws-core");
    for (member, files) in members {
        for (path, text) in *files {
            let text = text
                .replace("{name}", member)
                .replace("{ws-core}", &core.display().to_string());
            write(&root.join(member), path, &text);
        }
    }
    Workspace(root)
}

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const MANIFEST: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[dependencies]
ws-core = { path = "{ws-core}" }
"#;

/// A library whose enums sit in a nested module and use payload structs of another module, with
/// requests and replies.
const APP: &[(&str, &str)] = &[
    ("Cargo.toml", MANIFEST),
    ("src/lib.rs", "pub mod api;\npub mod model;\n"),
    ("src/api/mod.rs", "pub mod wire;\n"),
    (
        "src/api/wire.rs",
        r#"use ws_core::ws_messages;
use crate::model::{Note, NoteList};

#[ws_messages]
pub enum ToServer {
    #[ws(reply = Note)]
    AddNote { text: String },
    #[ws(reply = NoteList)]
    ListNotes,
}

#[ws_messages(outbound)]
pub enum ToClient {
    NoteAdded(Note),
}
"#,
    ),
    (
        "src/model.rs",
        r#"#[ws_core::payload]
pub struct Note { pub id: u32, pub text: String }

#[ws_core::payload]
pub struct NoteList { pub notes: Vec<Note> }
"#,
    ),
];

/// Runs the command in `dir` (the repository's test target directory, so the crates it builds are built
/// once for every test).
fn codegen(dir: &Path, args: &[&str]) -> Output {
    let _one = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    let output = Command::new(env!("CARGO_BIN_EXE_ws-codegen"))
        .args(args)
        .current_dir(dir)
        .env(
            "CARGO_TARGET_DIR",
            repo().join("target").join("tests").join("ws-codegen"),
        )
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `tsc --noEmit` on `code` (in `web/use.ts` of the workspace, importing `../app/sdk/client.js`), with
/// `ws-core-client` resolved to this repository's SDK source; installs the SDK's npm packages if missing.
fn tsc(root: &Path, code: &str) -> Output {
    let sdk = repo().join("sdk-ts");
    let bin = sdk.join("node_modules/.bin/tsc");
    if !bin.exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&sdk)
            .status()
            .expect("npm is needed to type-check the generated client");
        assert!(status.success());
    }
    let config = serde_json::json!({
        "compilerOptions": {
            "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
            "lib": ["ES2022", "DOM"], "types": [], "strict": true, "noEmit": true,
            "exactOptionalPropertyTypes": true, "skipLibCheck": true,
            "paths": { "ws-core-client": [sdk.join("src/index.ts").display().to_string()] }
        },
        "include": ["use.ts"]
    });
    write(root, "web/tsconfig.json", &config.to_string());
    write(root, "web/use.ts", code);
    Command::new(bin)
        .args(["-p", "web/tsconfig.json"])
        .current_dir(root)
        .output()
        .unwrap()
}

const USE: &str = r#"import { type Client, createClient, type Note, validators, WsRequestError } from "../app/sdk/client.js";

export async function use(): Promise<string> {
  const client: Client = createClient("ws://127.0.0.1:1/ws", { onInvalid: (frame) => console.warn(frame.path) });
  const fits = validators.client["add_note"]?.({ text: "hi" }, "data") === undefined;
  const note: Note = await client.request("add_note", { text: "hi" });
  const list = await client.request("list_notes");
  client.on("note_added", (added) => console.log(added.id, added.text));
  client.send("add_note", { text: "no reply wanted" });
  return `${note.id} ${list.notes.length} ${WsRequestError.name} ${fits}`;
}
"#;

const MISUSE: &str = r#"import { createClient } from "../app/sdk/client.js";

export async function misuse(): Promise<void> {
  const client = createClient("ws://127.0.0.1:1/ws");
  // @ts-expect-error: `text` must be a string
  client.send("add_note", { text: 1 });
  // @ts-expect-error: no such message type
  client.send("remove_note", { id: 1 });
  // @ts-expect-error: `note_added` is the server's
  client.send("note_added", { id: 1, text: "x" });
  // @ts-expect-error: the reply of `add_note` is a `Note`, not a list
  const list: { notes: unknown[] } = await client.request("add_note", { text: "x" });
  void list;
}
"#;

#[test]
fn generates_checks_and_types_the_sdk_of_a_workspace_outside_the_repository() {
    let root = workspace("user", &[("app", APP)]);
    let out = codegen(&root, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let sdk = root.join("app/sdk");
    for file in [
        "client.ts",
        "protocol.ts",
        "validate.ts",
        "asyncapi.json",
        "schema/client-to-server.json",
        "schema/client-to-server/add_note.json",
        "schema/client-to-server/list_notes.json",
        "schema/server-to-client/note_added.json",
    ] {
        assert!(sdk.join(file).is_file(), "{file} missing; stdout: {stdout}");
        assert!(
            stdout.contains(&format!("wrote app/sdk/{file}")),
            "{stdout}"
        );
    }
    let protocol = std::fs::read_to_string(sdk.join("protocol.ts")).unwrap();
    assert!(
        protocol.contains("add_note: { data: ToServerAddNote; reply: Note }"),
        "{protocol}"
    );

    let used = tsc(&root, USE);
    assert!(used.status.success(), "{}", text(&used.stdout));
    let misused = tsc(&root, MISUSE);
    assert!(misused.status.success(), "{}", text(&misused.stdout));
    // The directives above are needed: without one, tsc rejects that line.
    let unmarked = MISUSE.replace("// @ts-expect-error: no such message type", "");
    let rejected = tsc(&root, &unmarked);
    assert!(!rejected.status.success());
    assert!(
        text(&rejected.stdout).contains("\"remove_note\""),
        "{}",
        text(&rejected.stdout)
    );

    let check = codegen(&root, &["--check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains("app: the 9 generated files in app/sdk are up to date"),
        "{}",
        text(&check.stdout)
    );
    std::fs::write(sdk.join("client.ts"), "// edited\n").unwrap();
    std::fs::remove_file(sdk.join("schema/client-to-server/list_notes.json")).unwrap();
    std::fs::write(sdk.join("schema/server-to-client/gone.json"), "{}").unwrap();
    let stale = codegen(&root, &["--check"]);
    assert_eq!(stale.status.code(), Some(1));
    let stderr = text(&stale.stderr);
    for line in [
        "3 generated file(s) are out of date",
        "app/sdk/client.ts (differs)",
        "app/sdk/schema/client-to-server/list_notes.json (missing)",
        "app/sdk/schema/server-to-client/gone.json (not generated any more)",
    ] {
        assert!(stderr.contains(line), "{line} in {stderr}");
    }
    assert_eq!(
        std::fs::read_to_string(sdk.join("client.ts")).unwrap(),
        "// edited\n",
        "--check writes nothing"
    );

    let other = root.join("elsewhere");
    let moved = codegen(
        &root,
        &["--package", "app", "--out", other.to_str().unwrap()],
    );
    assert!(moved.status.success(), "{}", text(&moved.stderr));
    assert!(other.join("client.ts").is_file());
    let again = codegen(&root, &[]);
    assert!(again.status.success());
    assert!(!sdk.join("schema/server-to-client/gone.json").exists());
    assert!(codegen(&root, &["--check"]).status.success());
}

/// `--check` reports what the stale schema files change for clients built from the committed ones:
/// exit status 2 when some change breaks them, 1 when none does.
#[test]
fn check_reports_which_changes_break_deployed_clients() {
    let root = workspace("compat", &[("app", APP)]);
    assert!(codegen(&root, &[]).status.success());
    let wire = root.join("app/src/api/wire.rs");
    let original = std::fs::read_to_string(&wire).unwrap();
    let added = original.replace(
        "    NoteAdded(Note),\n",
        "    NoteAdded(Note),\n    NoteRemoved { id: u32 },\n",
    );
    let tagged = added.replace(
        "AddNote { text: String }",
        "AddNote { text: String, tag: String }",
    );
    std::fs::write(&wire, &tagged).unwrap();
    let breaking = codegen(&root, &["--check"]);
    assert_eq!(
        breaking.status.code(),
        Some(2),
        "{}",
        text(&breaking.stderr)
    );
    let stderr = text(&breaking.stderr);
    for line in [
        "For clients built from the committed files:",
        "breaking: app: client → server `add_note`: data.tag is required now",
        "compatible: app: server → client `note_removed`: new: deployed clients ignore it",
    ] {
        assert!(stderr.contains(line), "{line} in {stderr}");
    }
    assert!(
        stderr.find("breaking:") < stderr.find("compatible:"),
        "{stderr}"
    );
    std::fs::write(&wire, &added).unwrap();
    let compatible = codegen(&root, &["--check"]);
    assert_eq!(
        compatible.status.code(),
        Some(1),
        "{}",
        text(&compatible.stderr)
    );
    let stderr = text(&compatible.stderr);
    assert!(
        stderr.contains("compatible: app: server → client `note_removed`"),
        "{stderr}"
    );
    assert!(!stderr.contains("breaking:"), "{stderr}");
}

/// Runs the command in a one-member workspace made of `files` and returns its error output, after
/// checking that it failed with status 1.
fn refused(name: &str, files: &[(&str, &str)], args: &[&str]) -> String {
    let root = workspace(name, &[("app", files)]);
    let out = codegen(&root, args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    // Its own message comes last, after whatever cargo printed while building.
    let own = stderr.rfind("\nerror: ").map_or(0, |i| i + 1);
    assert!(stderr[own..].starts_with("error: "), "{stderr}");
    stderr[own..].to_owned()
}

/// The app with one file replaced.
fn with(file: &'static str, text: &'static str) -> Vec<(&'static str, &'static str)> {
    let mut files: Vec<(&str, &str)> = APP.iter().filter(|(f, _)| *f != file).copied().collect();
    files.push((file, text));
    files
}

#[test]
fn each_bad_input_gets_its_message_and_exit_status_1() {
    let unknown = refused("unknown", APP, &["--package", "nope"]);
    assert!(
        unknown.contains("no package `nope` in this workspace; its members are: app"),
        "{unknown}"
    );

    let bin_only = [
        ("Cargo.toml", MANIFEST),
        (
            "src/main.rs",
            "#[ws_core::ws_messages]\npub enum In { Ping }\nfn main() {}\n",
        ),
    ];
    let no_lib = refused("binary", &bin_only, &[]);
    assert!(
        no_lib
            .contains("package `app` has no library target, and declares #[ws_messages] enums in")
            && no_lib.contains("src/main.rs:2")
            && no_lib.contains("move them into src/lib.rs"),
        "{no_lib}"
    );

    let private = with(
        "src/model.rs",
        "#[ws_core::payload]\npub struct Note { pub id: u32, pub text: String }\n\
         #[ws_core::payload]\npub struct NoteList { pub notes: Vec<Note> }\n\
         #[ws_core::ws_messages]\nenum Hidden { Ping }\n",
    );
    let not_pub = refused("private", &private, &[]);
    assert!(
        not_pub.contains("the #[ws_messages] enum `model::Hidden` of package `app`")
            && not_pub.contains("src/model.rs:6) is not public"),
        "{not_pub}"
    );

    let unreachable = with("src/lib.rs", "mod api;\npub mod model;\n");
    let hidden = refused("unreachable", &unreachable, &[]);
    assert!(
        hidden.contains("`api::wire::ToServer` of package `app`")
            && hidden.contains("module `api` is private"),
        "{hidden}"
    );

    let none = [
        ("Cargo.toml", MANIFEST),
        ("src/lib.rs", "pub fn nothing() {}\n"),
    ];
    let empty = refused("empty", &none, &[]);
    assert!(
        empty.contains("no #[ws_messages] enum found in this workspace")
            && empty.contains("app/src/lib.rs and its modules"),
        "{empty}"
    );

    let misnamed = with(
        "Cargo.toml",
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dependencies]\nws-core = { path = \"{ws-core}\" }\n\n\
         [package.metadata.ws-codegen]\npresence = \"model::Member\"\n",
    );
    let unresolved = refused("metadata", &misnamed, &[]);
    assert!(
        unresolved.contains(
            "`presence` in [package.metadata.ws-codegen] of app/Cargo.toml: `model::Member` does not \
             name a usable type of package `app`"
        ) && unresolved.contains("cannot find type `Member`"),
        "{unresolved}"
    );

    let broken = with(
        "src/model.rs",
        "#[ws_core::payload]\npub struct Note { pub id: u32, pub text: String }\n\
         #[ws_core::payload]\npub struct NoteList { pub notes: Vec<Note> }\n\
         pub fn broken() -> u32 { \"not a number\" }\n",
    );
    let compile = refused("broken", &broken, &[]);
    assert!(
        compile.contains("package `app` does not compile") && compile.contains("E0308"),
        "{compile}"
    );
}
