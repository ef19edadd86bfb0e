//! The capture's sidecar: `<dump>.events.jsonl` beside the dump (`ram.events.jsonl`
//! beside `ram.bin`), one JSON object per snapshot in dump order, written by the
//! capture script. What the dump alone cannot say: the stack pointer at the
//! snapshot (for the GC's roots), and the host time, the event that triggered
//! the snapshot, the size requested, the innermost frames.
//!
//! Every line is input: a line that is not an object with an integer
//! `snapshot` is an error naming its line, and no value is trusted to be in
//! range (a stack pointer outside RAM is left out where it is used). Keys
//! heapvis does not know are kept as they are.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One snapshot's line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    pub snapshot: u64,
    /// The stack pointer (a number, or a string such as `0x2001fe00`).
    pub sp: Option<u64>,
    /// Host time, seconds.
    pub time: Option<f64>,
    /// `alloc`, `collect_start`, `collect_marked`, `collect_end`, `memory_error`, ...
    pub event: Option<String>,
    pub requested_bytes: Option<u64>,
    /// The innermost function names.
    pub frames: Vec<String>,
    /// The events the capture broke at, comma-separated (`alloc,collect_start,
    /// memory_error`): what a line's first `watched` says, for every line. An
    /// event not watched is unknown, not absent.
    pub watched: Option<std::sync::Arc<str>>,
    /// Every other key, as written.
    pub extra: Map<String, Value>,
}

/// The events of a capture, by snapshot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sidecar {
    pub path: PathBuf,
    /// Sorted by snapshot; one per snapshot (the last line wins).
    events: Vec<Event>,
    /// Of a sidecar still being written: the bytes and lines read so far
    /// (whole lines only), from which [`Sidecar::grow`] reads on.
    read_bytes: u64,
    read_lines: usize,
}

/// Lines longer than this are refused: a line is one snapshot's few keys.
const MAX_LINE_BYTES: usize = 1 << 20;

impl Sidecar {
    /// Where the sidecar of `dump` sits.
    pub fn path_for(dump: &Path) -> PathBuf {
        let stem = dump.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        dump.with_file_name(format!("{stem}.events.jsonl"))
    }

    /// The sidecar beside `dump`, if there is one.
    pub fn beside(dump: &Path) -> Result<Option<Sidecar>> {
        let path = Self::path_for(dump);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        Self::parse(&path, &text).map(Some)
    }

    /// The sidecar beside a dump still being written: its whole lines only (the
    /// last may be half written).
    pub fn beside_growing(dump: &Path) -> Result<Option<Sidecar>> {
        let path = Self::path_for(dump);
        if !path.is_file() {
            return Ok(None);
        }
        let mut s = Sidecar { path, ..Default::default() };
        s.grow()?;
        Ok(Some(s))
    }

    /// Reads the whole lines appended since the last read (all of it again if
    /// the file shrank): a sidecar written alongside a dump being followed is
    /// parsed once, not at every look.
    pub fn grow(&mut self) -> Result<()> {
        use std::io::{Read, Seek};
        let path = self.path.clone();
        let mut file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        if len < self.read_bytes {
            *self = Sidecar { path: path.clone(), ..Default::default() };
        }
        if len == self.read_bytes {
            return Ok(());
        }
        file.seek(std::io::SeekFrom::Start(self.read_bytes)).map_err(|e| Error::io(&path, e))?;
        let mut bytes = Vec::new();
        file.take(len - self.read_bytes).read_to_end(&mut bytes).map_err(|e| Error::io(&path, e))?;
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |end| end + 1);
        let text = std::str::from_utf8(&bytes[..whole]).map_err(|e| Error::Sidecar {
            path: path.clone(),
            line: self.read_lines + 1,
            message: e.to_string(),
        })?;
        let more = Self::parse_from(&path, text, self.read_lines)?;
        let watched = self.events.first().and_then(|e| e.watched.clone());
        let mut events = more.events;
        if let Some(w) = watched {
            events.iter_mut().for_each(|e| e.watched = Some(std::sync::Arc::clone(&w)));
        }
        // The new lines first: for a snapshot written twice, the last line wins.
        events.append(&mut self.events);
        events.sort_by_key(|e| e.snapshot);
        events.dedup_by_key(|e| e.snapshot);
        self.events = events;
        self.read_bytes += whole as u64;
        self.read_lines += text.lines().count();
        Ok(())
    }

    /// The last snapshot with a line.
    pub fn last_snapshot(&self) -> Option<u64> {
        self.events.last().map(|e| e.snapshot)
    }

    /// Parses the lines of `text` (blank lines are skipped).
    pub fn parse(path: &Path, text: &str) -> Result<Sidecar> {
        Self::parse_from(path, text, 0)
    }

    /// [`Sidecar::parse`] of lines that follow `lines_before` others (for the
    /// line numbers of errors).
    fn parse_from(path: &Path, text: &str, lines_before: usize) -> Result<Sidecar> {
        let bad = |line: usize, message: String| Error::Sidecar { path: path.to_path_buf(), line, message };
        let mut events = Vec::new();
        for (k, line) in text.lines().enumerate() {
            let line_no = lines_before + k + 1;
            if line.trim().is_empty() {
                continue;
            }
            if line.len() > MAX_LINE_BYTES {
                return Err(bad(line_no, format!("longer than {MAX_LINE_BYTES} bytes")));
            }
            let value: Value = serde_json::from_str(line).map_err(|e| bad(line_no, e.to_string()))?;
            let Value::Object(map) = value else { return Err(bad(line_no, "not a JSON object".into())) };
            events.push(Event::from_map(map).map_err(|m| bad(line_no, m))?);
        }
        events.reverse();
        events.sort_by_key(|e| e.snapshot); // stable: the last line of a snapshot first
        events.dedup_by_key(|e| e.snapshot);
        let watched = events.iter_mut().find_map(|e| e.extra.remove("watched")).map(|v| watched_list(&v));
        if let Some(w) = watched {
            let w: std::sync::Arc<str> = w.map_err(|m| bad(0, m))?.into();
            events.iter_mut().for_each(|e| e.watched = Some(std::sync::Arc::clone(&w)));
        }
        Ok(Sidecar { path: path.to_path_buf(), events, ..Default::default() })
    }

    /// The event of snapshot `snapshot`, if the sidecar has one.
    pub fn get(&self, snapshot: u64) -> Option<&Event> {
        self.events.binary_search_by_key(&snapshot, |e| e.snapshot).ok().map(|i| &self.events[i])
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

impl Event {
    fn from_map(mut map: Map<String, Value>) -> std::result::Result<Event, String> {
        let snapshot = map.remove("snapshot").ok_or("no `snapshot`")?;
        let snapshot = number(&snapshot).ok_or("`snapshot` is not a whole number")?;
        let sp = match map.remove("sp") {
            None | Some(Value::Null) => None,
            Some(v) => Some(number(&v).ok_or("`sp` is not an address")?),
        };
        let time = map.remove("time").and_then(|v| v.as_f64());
        let event = map.remove("event").and_then(|v| v.as_str().map(str::to_owned));
        let requested_bytes = map.remove("requested_bytes").as_ref().and_then(number);
        let frames = match map.remove("frames") {
            Some(Value::Array(a)) => a.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        };
        Ok(Event { snapshot, sp, time, event, requested_bytes, frames, watched: None, extra: map })
    }
}

/// `watched`: an array of event names, as one comma-separated text.
fn watched_list(v: &Value) -> std::result::Result<String, String> {
    let names: Option<Vec<&str>> = v.as_array().and_then(|a| a.iter().map(Value::as_str).collect());
    let names = names.ok_or("`watched` is not an array of event names")?;
    Ok(names.join(","))
}

/// A whole number written as a JSON number or as a decimal or `0x` string.
fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_sidecar_is_read_a_whole_line_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("ram.bin");
        let path = Sidecar::path_for(&dump);
        let line = |i: u64| format!("{{\"snapshot\": {i}, \"sp\": {}}}\n", 1000 + i);
        let first = format!("{{\"snapshot\": 0, \"watched\": [\"alloc\"]}}\n{}", line(1));
        std::fs::write(&path, format!("{first}{}", &line(2)[..7])).unwrap();
        let mut s = Sidecar::beside_growing(&dump).unwrap().unwrap();
        assert_eq!((s.len(), s.last_snapshot()), (2, Some(1)), "the half-written line waits");
        std::fs::write(&path, format!("{first}{}{}{}", line(2), line(3), line(2).replace("1002", "7"))).unwrap();
        s.grow().unwrap();
        assert_eq!((s.len(), s.last_snapshot()), (4, Some(3)));
        assert_eq!(s.get(2).unwrap().sp, Some(7), "the last line of a snapshot wins across reads");
        assert_eq!(
            s.get(3).unwrap().watched.as_deref(),
            Some("alloc"),
            "the first line's `watched` holds for later lines"
        );
        std::fs::write(&path, format!("{first}{{\"snapshot\": 9, \"sp\": \"0x10\"}}\n")).unwrap();
        s.grow().unwrap();
        assert_eq!(s.last_snapshot(), Some(9), "a file that shrank is read again from its start");
        std::fs::write(&path, format!("{first}not json\n")).unwrap();
        let e = Sidecar::beside_growing(&dump).unwrap_err().to_string();
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn lines_become_events_by_snapshot() {
        let text = r#"{"snapshot": 0, "sp": 536903600, "time": 1.5, "event": "alloc", "requested_bytes": 16, "frames": ["gc_alloc", "mp_obj_new_list"], "board": "x"}

{"snapshot": 2, "sp": "0x2001fe00"}
{"snapshot": 1}
{"snapshot": 2, "sp": "0x2001fe08"}
"#;
        let s = Sidecar::parse(Path::new("ram.events.jsonl"), text).unwrap();
        assert_eq!(s.len(), 3);
        let e0 = s.get(0).unwrap();
        assert_eq!(
            (e0.sp, e0.time, e0.event.as_deref(), e0.requested_bytes),
            (Some(0x2000_7fb0), Some(1.5), Some("alloc"), Some(16))
        );
        assert_eq!(e0.frames, ["gc_alloc", "mp_obj_new_list"]);
        assert_eq!(e0.extra.get("board"), Some(&Value::String("x".into())));
        assert_eq!(s.get(1).unwrap().sp, None);
        assert_eq!(s.get(2).unwrap().sp, Some(0x2001_fe08), "the last line of a snapshot wins");
        assert!(s.get(3).is_none());
    }

    #[test]
    fn bad_lines_are_errors_naming_the_line() {
        for (text, line, what) in [
            ("{\"snapshot\": 0}\nnot json\n", 2, ""),
            ("[1, 2]\n", 1, "not a JSON object"),
            ("{\"sp\": 4}\n", 1, "no `snapshot`"),
            ("{\"snapshot\": -1}\n", 1, "not a whole number"),
            ("{\"snapshot\": 1, \"sp\": \"here\"}\n", 1, "not an address"),
        ] {
            let e = Sidecar::parse(Path::new("ram.events.jsonl"), text).unwrap_err().to_string();
            assert!(e.contains(&format!("line {line}")) && e.contains(what), "{e}");
        }
    }

    #[test]
    fn the_sidecar_sits_beside_the_dump() {
        assert_eq!(Sidecar::path_for(Path::new("/x/ram.bin")), Path::new("/x/ram.events.jsonl"));
        assert_eq!(Sidecar::path_for(Path::new("soak")), Path::new("soak.events.jsonl"));
    }
}
