//! The layering invariant, checked on the source: workers (`twitch`, `chzzk`, `bilibili`, `recorder`, `chat`,
//! `upload`) and the layers they share (`work`, `format`, `archive`, `metrics`) import nothing
//! from `core` or `frontend`. What a worker needs from the state it gets through `work` (events, calls,
//! tokens, job rows) or an interface it defines (`upload::JobSource`). `archive`, the
//! recordings on disk, sits below the workers too: it names none of them.

use std::path::{Path, PathBuf};

/// Folders and files below the core: none of them may name `core` or `frontend`.
const WORKERS: &[&str] = &[
    "src/twitch",
    "src/recorder",
    "src/chat",
    "src/upload",
    "src/post",
    "src/summary",
    "src/chzzk",
    "src/bilibili",
    "src/work",
    "src/format.rs",
    "src/archive",
    // Workers hold the service's metrics: the registry knows neither the core nor a front-end.
    "src/metrics.rs",
];

/// The layer below the workers: it may name none of them.
const BELOW_WORKERS: &[&str] = &["src/archive"];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.to_path_buf());
        }
        return;
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for entry in entries {
        rust_files(&entry, out);
    }
}

/// The code of a file without its comments (line comments and `//!`/`///` docs), one string.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths into `core` or `frontend`: `crate::core…`, `super::…::core…`, and the same names
/// inside a `use crate::{…}` group.
fn forbidden_paths(code: &str) -> Vec<String> {
    paths_into(code, &["core", "frontend"])
}

/// Paths into any of `layers`, in the forms [`forbidden_paths`] describes.
fn paths_into(code: &str, layers: &[&str]) -> Vec<String> {
    let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let mut found = Vec::new();
    for &layer in layers {
        for prefix in ["crate::", "super::"] {
            for (at, _) in compact.match_indices(&format!("{prefix}{layer}")) {
                let after = compact[at + prefix.len() + layer.len()..].chars().next();
                if !after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    found.push(format!("{prefix}{layer}"));
                }
            }
        }
    }
    // `use crate::{config, core::X}`: the names at the top of a group.
    for (at, _) in compact.match_indices("crate::{") {
        let group = &compact[at + "crate::{".len()..];
        let mut depth = 0;
        let mut name = String::new();
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' | ':' if depth == 0 => {
                    if layers.contains(&name.as_str()) {
                        found.push(format!("crate::{{{name}…}}"));
                    }
                    name.clear();
                }
                c if depth == 0 => name.push(c),
                _ => {}
            }
        }
        if layers.contains(&name.as_str()) {
            found.push(format!("crate::{{{name}}}"));
        }
    }
    found
}

#[test]
fn workers_import_neither_the_core_nor_the_front_ends() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for path in WORKERS {
        rust_files(&root.join(path), &mut files);
    }
    assert!(files.len() > 20, "the worker folders were not found");
    let mut offences = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for path in forbidden_paths(&code_of(&text)) {
            offences.push(format!(
                "{}: {path}",
                file.strip_prefix(root).unwrap().display()
            ));
        }
    }
    assert!(
        offences.is_empty(),
        "workers must not import core or frontend:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_archive_imports_no_worker() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for path in BELOW_WORKERS {
        rust_files(&root.join(path), &mut files);
    }
    assert!(files.len() >= 4, "the archive folder was not found");
    let mut offences = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for path in paths_into(&code_of(&text), &WORKER_NAMES) {
            offences.push(format!(
                "{}: {path}",
                file.strip_prefix(root).unwrap().display()
            ));
        }
    }
    assert!(
        offences.is_empty(),
        "the archive must not import a worker:\n{}",
        offences.join("\n")
    );
}

/// The workers the archive sits below.
const WORKER_NAMES: [&str; 4] = ["recorder", "chat", "upload", "twitch"];

#[test]
fn the_check_sees_every_form_of_import() {
    for code in [
        "use crate::core::Events;",
        "use crate::frontend::render;",
        "use crate::{config::Config, core::Calls};",
        "use crate::{\n    core,\n    event::Event,\n};",
        "use super::super::core::store::Store;",
        "let x = crate::core::store::Store::open(p);",
    ] {
        assert!(!forbidden_paths(code).is_empty(), "missed: {code}");
    }
    for code in [
        "use crate::work::Events;",
        "use crate::{config::Config, work::Calls};",
        "use crate::corer::X;",
        "use std::core::mem;",
    ] {
        assert!(forbidden_paths(code).is_empty(), "wrongly refused: {code}");
    }
    assert_eq!(code_of("let a = 1; // crate::core::X"), "let a = 1; ");
    for code in [
        "use crate::recorder::writer::PartFile;",
        "use crate::{config::Config, upload::after::Plan};",
        "use super::super::chat::writer;",
        "let t = crate::twitch::oauth::validate;",
    ] {
        assert!(
            !paths_into(code, &WORKER_NAMES).is_empty(),
            "missed: {code}"
        );
    }
    for code in [
        "use crate::archive::layout::chat_file;",
        "use crate::recorders::X;",
        "use super::layout::temp_path_of;",
    ] {
        assert!(
            paths_into(code, &WORKER_NAMES).is_empty(),
            "wrongly refused: {code}"
        );
    }
}

/// The core returns data (replies, status and disk reports, events); every word for people
/// is the front-ends' (`frontend/render`). Only the core's tests read replies through it.
#[test]
fn the_core_imports_no_front_end() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/core"), &mut files);
    assert!(files.len() > 10, "the core folder was not found");
    let mut offences = Vec::new();
    for file in files {
        let is_test = file.file_name().is_some_and(|n| n == "tests.rs")
            || file.components().any(|c| c.as_os_str() == "tests");
        if is_test {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for path in forbidden_paths(&code_of(&text)) {
            if path.contains("frontend") {
                offences.push(format!(
                    "{}: {path}",
                    file.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "the core must not import the front-ends:\n{}",
        offences.join("\n")
    );
}
