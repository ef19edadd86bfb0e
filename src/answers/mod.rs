//! Answers from an output folder's tables, after the run: what a soak test's
//! engineer asks the morning after (`heapvis summary`, `heapvis leaks`). They
//! read the Parquet files heapvis wrote, never the dump.

pub mod culprits;
pub mod diff;
pub mod gate;
pub mod leaks;
pub mod summary;
crate::internal! {
    capture;
    export;
    instances;
}

use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;

use crate::error::{Error, Result};

/// The Parquet files of table `name` in `out`: its part files in order, or
/// its one file.
pub fn table_files(out: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let file = out.join(format!("{name}.parquet"));
    if file.is_file() {
        return Ok(vec![file]);
    }
    let dir = out.join(name);
    let entries = std::fs::read_dir(&dir).map_err(|_| Error::MissingInput {
        path: dir.clone(),
        expected: "a table heapvis wrote (run `heapvis analyze` first, with the table)",
    })?;
    let mut parts: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    parts.sort();
    Ok(parts)
}

/// Every batch of table `name` in `out`.
pub fn read_table(out: &Path, name: &str) -> Result<Vec<RecordBatch>> {
    read_columns(out, name, None)
}

/// Every batch of table `name` in `out`, with only the columns `columns` (all
/// with `None`): a long run's tables are read without their text.
pub fn read_columns(out: &Path, name: &str, columns: Option<&[&str]>) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for_each_batch(out, name, columns, |b| {
        batches.push(b);
        Ok(())
    })?;
    Ok(batches)
}

/// Calls `f` on each batch of table `name` in `out` in turn (only the columns
/// `columns`, all with `None`), holding one batch at a time: for the tables
/// that grow with the run.
pub fn for_each_batch(
    out: &Path,
    name: &str,
    columns: Option<&[&str]>,
    mut f: impl FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    for path in table_files(out, name)? {
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        let bad = |e: parquet::errors::ParquetError| Error::WrongInput {
            path: path.clone(),
            expected: "a Parquet file heapvis wrote",
            found: e.to_string(),
        };
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).map_err(bad)?;
        let builder = match columns {
            Some(names) => {
                let schema = builder.parquet_schema();
                let wanted: Vec<usize> =
                    (0..schema.num_columns()).filter(|&i| names.contains(&schema.column(i).name())).collect();
                let mask = parquet::arrow::ProjectionMask::leaves(schema, wanted);
                builder.with_projection(mask)
            }
            None => builder,
        };
        let reader = builder.build().map_err(bad)?;
        for b in reader {
            f(b.map_err(|e| Error::WrongInput {
                path: path.clone(),
                expected: "a Parquet file heapvis wrote",
                found: e.to_string(),
            })?)?;
        }
    }
    Ok(())
}

/// Column `name` of `batch`, as whole numbers (nulls as `None`).
pub fn ints(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>> {
    let col = column(batch, name)?;
    let a = col.as_any().downcast_ref::<Int64Array>().ok_or_else(|| wrong_type(name, col.data_type()))?;
    Ok((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect())
}

/// Column `name` of `batch`, as real numbers (nulls as `None`).
pub fn floats(batch: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>> {
    let col = column(batch, name)?;
    let a = col.as_any().downcast_ref::<Float64Array>().ok_or_else(|| wrong_type(name, col.data_type()))?;
    Ok((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect())
}

/// Column `name` of `batch`, as booleans (nulls as `None`).
pub fn bools(batch: &RecordBatch, name: &str) -> Result<Vec<Option<bool>>> {
    let col = column(batch, name)?;
    let a = col.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| wrong_type(name, col.data_type()))?;
    Ok((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i))).collect())
}

/// Column `name` of `batch`, as text (a dictionary column decoded).
pub fn texts(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let col = column(batch, name)?;
    let plain = arrow::compute::cast(&col, &DataType::Utf8).map_err(|_| wrong_type(name, col.data_type()))?;
    let a = plain.as_any().downcast_ref::<StringArray>().ok_or_else(|| wrong_type(name, col.data_type()))?;
    Ok((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_string())).collect())
}

fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    batch.column_by_name(name).cloned().ok_or_else(|| Error::WrongInput {
        path: PathBuf::from(name),
        expected: "a column of the table",
        found: "no such column (a table of another heapvis version?)".to_string(),
    })
}

fn wrong_type(name: &str, t: &DataType) -> Error {
    Error::WrongInput {
        path: PathBuf::from(name),
        expected: "the column's type in heapvis' tables",
        found: t.to_string(),
    }
}
