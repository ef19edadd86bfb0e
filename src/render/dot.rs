//! The ownership graph of one snapshot as Graphviz DOT, built like the reference's
//! `heap_ownership` drawing: one node per allocated block coloured by kind and
//! labelled with its address, strings with their text, qstr chunks with their
//! qstrs, map tables with their keys as ports (so each value's edge leaves from its
//! key), and root pointers as named nodes. Rendering to SVG/PNG goes through `dot`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::decode::{Category, SnapshotReport};
use crate::error::{Error, Result};

/// Characters of a string or qstr list shown per label line, as the reference wraps.
const WRAP: usize = 16;
/// At most this many characters of one string are shown.
const MAX_TEXT: usize = 256;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => out.push('\u{2591}'),
            c => out.push(c),
        }
    }
    out
}

fn wrapped(text: &str) -> String {
    let chars: Vec<char> = text.chars().take(MAX_TEXT).collect();
    chars.chunks(WRAP).map(|c| escape(&c.iter().collect::<String>())).collect::<Vec<_>>().join("<br/>")
}

fn node_id(address: u64) -> String {
    format!("b{address:08x}")
}

/// The DOT text for one decoded snapshot.
pub fn ownership_dot(r: &SnapshotReport) -> String {
    let mut strings: BTreeMap<u64, &str> = BTreeMap::new();
    for s in &r.strings {
        strings.entry(s.block).or_insert(&s.text);
    }
    let mut chunks: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for q in &r.qstrs {
        if let Some(c) = q.chunk {
            chunks.entry(c).or_default().push(&q.text);
        }
    }
    // Map-table slots with keys: (table, word) → key text.
    let mut keys: BTreeMap<u64, Vec<(u32, &str)>> = BTreeMap::new();
    for e in &r.edges {
        if let (Some(b), Some(w), Some(k)) = (e.from_address, e.from_word, e.map_key.as_deref()) {
            keys.entry(b).or_default().push((w, k));
        }
    }

    let mut out = String::new();
    let _ = writeln!(out, "digraph heap_ownership_{} {{", r.index);
    let _ = writeln!(out, "  graph [rankdir=LR, fontname=\"monospace\", label=\"snapshot {}\"];", r.index);
    let _ = writeln!(out, "  node [shape=plaintext, fontname=\"monospace\", fontsize=10];");
    for b in &r.blocks {
        let colour = b.category.reference_colour();
        let head = format!("0x{:08x} {} {}B", b.address, b.kind, b.blocks * r.geometry.bytes_per_block);
        let mut rows = format!("<tr><td port=\"h\" colspan=\"2\">{}</td></tr>", escape(&head));
        if let Some(n) = &b.name {
            let _ = write!(rows, "<tr><td colspan=\"2\">{}</td></tr>", escape(n));
        }
        match b.category {
            Category::StringData => {
                if let Some(t) = strings.get(&b.address) {
                    let _ = write!(rows, "<tr><td colspan=\"2\">{}</td></tr>", wrapped(t));
                }
            }
            Category::QstrChunk => {
                if let Some(q) = chunks.get(&b.address) {
                    let _ = write!(rows, "<tr><td colspan=\"2\">{}</td></tr>", wrapped(&q.join("  ")));
                }
            }
            Category::MapTable => {
                for (w, k) in keys.get(&b.address).into_iter().flatten() {
                    let _ = write!(rows, "<tr><td port=\"w{w}\" colspan=\"2\">{}</td></tr>", escape(k));
                }
            }
            _ => {}
        }
        // Black text is hard to read on the reference's dark fills.
        let text = if dark_fill(b.category) { " fontcolor=\"white\"" } else { "" };
        let _ = writeln!(
            out,
            "  {} [label=<<table bgcolor=\"{colour}\" border=\"1\" cellborder=\"0\" cellspacing=\"0\">{rows}</table>>{text}];",
            node_id(b.address)
        );
    }
    // Block edges to allocated blocks, once per (from, port, to).
    let mut seen = BTreeSet::new();
    let mut roots: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for e in &r.edges {
        let Some(to) = e.to_alloc_address else { continue };
        match (e.from_address, &e.root_name) {
            (Some(from), _) => {
                let port = match (&e.map_key, e.from_word) {
                    (Some(_), Some(w)) => format!("w{w}"),
                    _ => "h".to_string(),
                };
                if seen.insert((from, port.clone(), to)) {
                    let _ = writeln!(out, "  {}:{port} -> {}:h;", node_id(from), node_id(to));
                }
            }
            (None, Some(name)) => {
                roots.entry(name).or_default().insert(to);
            }
            _ => {}
        }
    }
    for (i, (name, targets)) in roots.iter().enumerate() {
        let _ = writeln!(out, "  r{i} [shape=box, style=rounded, label=\"{}\"];", name.replace('"', "'"));
        for t in targets {
            let _ = writeln!(out, "  r{i} -> {}:h;", node_id(*t));
        }
    }
    out.push_str("}\n");
    out
}

/// Whether a category's fill ([`Category::reference_colour`]) is dark: red, blue
/// and purple, whose relative luminance is under a third of white's.
fn dark_fill(category: Category) -> bool {
    matches!(category, Category::Dict | Category::Map | Category::Bytearray)
}

/// Runs `dot` to render `dot_text` into `out` (format from its extension: svg, png, pdf).
pub fn render_with_dot(dot_text: &str, out: &Path) -> Result<()> {
    let format = out.extension().and_then(|e| e.to_str()).unwrap_or("svg").to_ascii_lowercase();
    let mut child = Command::new("dot")
        .arg(format!("-T{format}"))
        .arg("-o")
        .arg(out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|_| Error::Movie {
            path: out.into(),
            message: "rendering needs Graphviz's `dot` on PATH (Debian/Ubuntu: apt-get install graphviz); the .dot file was written".into(),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot_text.as_bytes()).map_err(|e| Error::io(out, e))?;
    }
    let o = child.wait_with_output().map_err(|e| Error::io(out, e))?;
    if !o.status.success() {
        let msg = String::from_utf8_lossy(&o.stderr);
        return Err(Error::Movie { path: out.into(), message: format!("dot failed: {}", msg.trim()) });
    }
    Ok(())
}
