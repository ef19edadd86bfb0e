//! The answers as tables, so SQL users get what `heapvis summary` prints:
//! `culprits.parquet` (the allocations splitting the free space at the run's
//! worst moments) and `memory_errors.parquet` (each MemoryError and its cause).
//!
//! They are made from the folder's other tables, after a run is committed, so
//! they answer for everything the folder holds; each is written under a
//! temporary name and renamed into place, so a reader sees the old file or the
//! new one, never half of one. Without a sidecar naming events, MemoryErrors
//! are unknown: no `memory_errors` file, rather than an empty one saying none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::culprits::Culprits;
use super::summary::{forensics, MemoryError};
use crate::error::{Error, Result};
use crate::outdir::TempFile;
use crate::tables::writer::{batch, ParquetFile};

/// The answers' table files.
pub const CULPRITS: &str = "culprits.parquet";
pub const MEMORY_ERRORS: &str = "memory_errors.parquet";

pub fn culprits_schema() -> SchemaRef {
    let int = |n: &str, null: bool| Field::new(n, DataType::Int64, null);
    let text = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        int("snapshot", false),
        text("moments", false),
        int("free_bytes", false),
        int("largest_free_bytes", false),
        int("k", false),
        int("largest_free_bytes_if_gone", false),
        int("address", false),
        int("bytes", false),
        text("kind", false),
        text("type_name", true),
        text("name", true),
        int("age_snapshots", false),
        Field::new("age_at_least", DataType::Boolean, false),
        text("holder", true),
        text("note", true),
    ]))
}

pub fn memory_errors_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("snapshot", DataType::Int64, false),
        Field::new("requested_bytes", DataType::Int64, true),
        Field::new("free_bytes", DataType::Int64, false),
        Field::new("largest_free_bytes", DataType::Int64, false),
        Field::new("cause", DataType::Utf8, false),
    ]))
}

/// Writes the answers' tables of output folder `out` from its other tables;
/// returns the files written. Nothing is written for a folder without
/// decoded snapshots or an `allocations` table.
pub fn write(out: &Path) -> Result<Vec<PathBuf>> {
    let has = |t: &str| super::table_files(out, t).is_ok_and(|f| !f.is_empty());
    if !has("snapshots") || !has("allocations") {
        return Ok(Vec::new());
    }
    let (errors, culprits) = forensics(out)?;
    let mut written = vec![persist(out, CULPRITS, &culprits_batch(&culprits)?)?];
    let errors_path = out.join(MEMORY_ERRORS);
    match errors {
        Some(e) => written.push(persist(out, MEMORY_ERRORS, &memory_errors_batch(&e)?)?),
        None => match std::fs::remove_file(&errors_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&errors_path, e)),
            _ => {}
        },
    }
    Ok(written)
}

fn persist(out: &Path, name: &str, b: &RecordBatch) -> Result<PathBuf> {
    let path = out.join(name);
    let tmp = TempFile::beside(&path);
    let mut file = ParquetFile::create(&tmp.path, b.schema())?;
    file.write(b)?;
    file.finish()?;
    tmp.persist(&path)?;
    Ok(path)
}

fn ints(v: impl IntoIterator<Item = u64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(v.into_iter().map(|x| i64::try_from(x).unwrap_or(i64::MAX))))
}

fn texts<'a>(v: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(v))
}

/// One row per allocation of each removal at each moment.
fn culprits_batch(all: &[Culprits]) -> Result<RecordBatch> {
    let rows: Vec<_> = all
        .iter()
        .flat_map(|c| c.removals.iter().flat_map(move |r| r.allocations.iter().map(move |a| (c, r, a))))
        .collect();
    let moments: Vec<String> = rows.iter().map(|(c, _, _)| c.moments.join(",")).collect();
    let columns: Vec<ArrayRef> = vec![
        ints(rows.iter().map(|(c, _, _)| c.snapshot)),
        texts(moments.iter().map(|m| Some(m.as_str()))),
        ints(rows.iter().map(|(c, _, _)| c.free_bytes)),
        ints(rows.iter().map(|(c, _, _)| c.largest_free_bytes)),
        ints(rows.iter().map(|(_, r, _)| r.allocations.len() as u64)),
        ints(rows.iter().map(|(_, r, _)| r.largest_free_bytes_if_gone)),
        ints(rows.iter().map(|(_, _, a)| a.address)),
        ints(rows.iter().map(|(_, _, a)| a.bytes)),
        texts(rows.iter().map(|(_, _, a)| Some(a.kind.as_str()))),
        texts(rows.iter().map(|(_, _, a)| a.type_name.as_deref())),
        texts(rows.iter().map(|(_, _, a)| a.name.as_deref())),
        ints(rows.iter().map(|(_, _, a)| a.age_snapshots)),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|(_, _, a)| Some(a.age_at_least)))),
        texts(rows.iter().map(|(_, _, a)| a.holder.as_deref())),
        texts(rows.iter().map(|(c, _, _)| c.note.as_deref())),
    ];
    batch("culprits", &culprits_schema(), columns)
}

fn memory_errors_batch(errors: &[MemoryError]) -> Result<RecordBatch> {
    let requested: Vec<Option<i64>> =
        errors.iter().map(|m| m.requested_bytes.map(|r| i64::try_from(r).unwrap_or(i64::MAX))).collect();
    let columns: Vec<ArrayRef> = vec![
        ints(errors.iter().map(|m| m.snapshot)),
        Arc::new(Int64Array::from(requested)),
        ints(errors.iter().map(|m| m.free_bytes)),
        ints(errors.iter().map(|m| m.largest_free_bytes)),
        texts(errors.iter().map(|m| Some(m.cause))),
    ];
    batch("memory_errors", &memory_errors_schema(), columns)
}
