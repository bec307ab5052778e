//! The house's rules, read from the source: arrows run down only (ARCHITECTURE.md). Each
//! module of the server may import only the layers below its own, and no files of any crate
//! of the workspace import each other in a circle.
//!
//! Imports are read from the code (`use` trees and paths in code; comments, doc links and test
//! modules left out: a test may reach anywhere), resolved to the file that defines the module
//! they name. A file's use of the folder it is in (its `mod.rs`: the folder's front door, with
//! the types its files share) is no arrow: the folder is one room.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The server's layers, from the bottom up. A module imports its own layer's module only
/// (itself) and the layers below.
const LAYERS: &[&[&str]] = &[
    &["protocol"],
    &["access", "auth"],
    &["metrics", "game", "client"],
    &["feed", "runtime", "http"],
    &["room"],
    &["config"],
    &["rooms"],
    &["cluster"],
    &["state"],
    &["api", "players", "spectators", "web"],
    &["server"],
    &["lib", "main"],
];

#[test]
fn the_servers_layers_import_only_the_layers_below() {
    let src = root().join("src");
    let files = sources(&src);
    let mut wrong = Vec::new();
    for (file, text) in &files {
        let module = module_of(&src, file);
        if module.last().is_some_and(|m| m == "tests") {
            continue;
        }
        let Some(from) = module.first() else { continue };
        let from_layer = layer(from).unwrap_or_else(|| panic!("{from} is in no layer: add it to LAYERS"));
        for target in imports(&module, text) {
            let Some(to) = target.first() else { continue };
            if to == from {
                continue;
            }
            let to_layer = layer(to).unwrap_or_else(|| panic!("{to} is in no layer: add it to LAYERS"));
            if to_layer >= from_layer {
                wrong.push(format!("{} -> crate::{}", file.display(), target.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "imports that do not run down:\n{}", wrong.join("\n"));
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    for krate in ["src", "client-demo/src", "bench/src", "relay/src"] {
        let src = root().join(krate);
        if !src.exists() {
            continue;
        }
        let files = sources(&src);
        let modules: BTreeMap<Vec<String>, PathBuf> = files.keys().map(|f| (module_of(&src, f), f.clone())).collect();
        let mut graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
        for (file, text) in &files {
            let module = module_of(&src, file);
            if module.last().is_some_and(|m| m == "tests") {
                continue;
            }
            for target in imports(&module, text) {
                // The file of the longest prefix of the path that is a module.
                let Some((n, to)) = (1..=target.len())
                    .rev()
                    .find_map(|n| Some((n, modules.get(&target[..n])?)))
                else {
                    continue;
                };
                // A folder's front door, seen from inside the folder, is no arrow.
                let own_folder = n < module.len() && module.starts_with(&target[..n]);
                if to != file && !own_folder {
                    graph.entry(file.clone()).or_default().insert(to.clone());
                }
            }
        }
        let circles = circles(&graph);
        assert!(
            circles.is_empty(),
            "files of {krate} that import each other in a circle: {circles:#?}"
        );
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.insert(path.clone(), std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    out
}

/// The module path of `file` under the crate root `src` (`src/room/tick.rs`: `room::tick`;
/// `src/room/mod.rs`: `room`; `src/lib.rs`: `lib`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") && parts.len() > 1 {
        parts.pop();
    }
    parts
}

/// The crate paths `text` (the code of module `module`) names: in `use` trees and in code,
/// `crate::…`, `super::…` and `self::…` made absolute. Comments and test modules are not code
/// here.
fn imports(module: &[String], text: &str) -> Vec<Vec<String>> {
    let code = code_of(text);
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .find(|p| rest.starts_with(**p) && (i == 0 || !is_ident(bytes[i - 1])));
        let Some(prefix) = starts else {
            i += 1;
            continue;
        };
        let (paths, used) = use_tree(&rest[prefix.len()..]);
        for path in paths {
            let mut absolute: Vec<String> = match *prefix {
                "crate::" => Vec::new(),
                "super::" => module_dir(module, 1),
                _ => module_dir(module, 0),
            };
            let mut path = path;
            while path.first().is_some_and(|p| p == "super") {
                path.remove(0);
                absolute.pop();
            }
            absolute.extend(path);
            if !absolute.is_empty() {
                out.push(absolute);
            }
        }
        i += prefix.len() + used.max(1);
    }
    out
}

/// The module `module` is in, `up` levels up (`self::` is 0, `super::` 1); the crate root's
/// modules (`lib`, `main`) have none.
fn module_dir(module: &[String], up: usize) -> Vec<String> {
    if module == ["lib"] || module == ["main"] {
        return Vec::new();
    }
    module[..module.len().saturating_sub(up)].to_vec()
}

/// The paths of a use tree (or a plain path) at the start of `text`, and the bytes it used.
fn use_tree(text: &str) -> (Vec<Vec<String>>, usize) {
    let bytes = text.as_bytes();
    let mut prefix = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        let ident = &text[start..i];
        if text[i..].starts_with("::{") {
            prefix.push(ident.to_owned());
            // A group: each member is a tree of its own.
            i += 3;
            let mut paths = Vec::new();
            loop {
                while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\n' || bytes[i] == b',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == b'}' {
                    i += 1;
                    break;
                }
                let (inner, used) = use_tree(&text[i..]);
                for path in inner {
                    let mut full = prefix.clone();
                    full.extend(path.into_iter().filter(|p| p != "self"));
                    paths.push(full);
                }
                i += used.max(1);
            }
            return (paths, i);
        }
        if text[i..].starts_with("::") && !ident.is_empty() {
            prefix.push(ident.to_owned());
            i += 2;
            continue;
        }
        if !ident.is_empty() && ident.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
            prefix.push(ident.to_owned());
        }
        // Skip an `as` rename.
        return (vec![prefix], i);
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The code of a file: no comments, no `#[cfg(test)]` module.
fn code_of(text: &str) -> String {
    let cut = [
        "#[cfg(test)]\nmod tests",
        "#[cfg(test)]\npub(crate) mod tests",
        "#[cfg(test)]\nmod ",
    ]
    .iter()
    .filter_map(|m| text.find(m))
    .min()
    .unwrap_or(text.len());
    text[..cut]
        .lines()
        .map(|l| match l.find("//") {
            Some(at) if !l[..at].contains('"') => &l[..at],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every circle of files in `graph` (strongly connected components of more than one file).
fn circles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    // Tarjan's algorithm, iterating over the nodes in order.
    struct State<'a> {
        graph: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        found: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn the_checks_see_what_they_are_meant_to() {
    let module = vec!["cluster".to_owned(), "heartbeat".to_owned()];
    let text = "use super::directory::{self, keys};\nuse crate::room::{Room, RoomId};\n\
                // use crate::api::nothing;\nfn f() { crate::metrics::Metrics::new(); }\n\
                #[cfg(test)]\nmod tests { use crate::server::Server; }";
    let found: BTreeSet<String> = imports(&module, text).into_iter().map(|p| p.join("::")).collect();
    let expected: BTreeSet<String> = [
        "cluster::directory",
        "cluster::directory::keys",
        "room",
        "metrics::Metrics::new",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(found, expected);
    let a = PathBuf::from("a.rs");
    let b = PathBuf::from("b.rs");
    let c = PathBuf::from("c.rs");
    let graph: BTreeMap<_, _> = [
        (a.clone(), BTreeSet::from([b.clone()])),
        (b.clone(), BTreeSet::from([a.clone(), c.clone()])),
    ]
    .into_iter()
    .collect();
    assert_eq!(circles(&graph).len(), 1, "a <-> b is a circle, b -> c is not");
}
