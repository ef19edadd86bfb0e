//! One Parquet file per table: an `ArrowWriter` with explicit properties, flushed by
//! size so memory stays bounded however long the dump is.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{Error, Result};

/// Rows buffered in Arrow builders before they become a record batch.
pub const BATCH_ROWS: usize = 4 * 1024;
/// Rows per Parquet row group (the writer also flushes at [`FLUSH_BYTES`]).
const ROW_GROUP_ROWS: usize = 4 * 1024;
const FLUSH_BYTES: usize = 1 << 20;

pub struct ParquetFile {
    path: PathBuf,
    writer: ArrowWriter<File>,
}

impl ParquetFile {
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_created_by(format!("heapvis {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|source| Error::Parquet { path: path.into(), source })?;
        Ok(ParquetFile { path: path.into(), writer })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|source| Error::Parquet { path: self.path.clone(), source })?;
        if self.writer.in_progress_size() > FLUSH_BYTES {
            self.writer.flush().map_err(|source| Error::Parquet { path: self.path.clone(), source })?;
        }
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        self.writer.close().map_err(|source| Error::Parquet { path: self.path, source })?;
        Ok(())
    }
}

/// Builds a record batch, naming the table if the columns do not fit the schema.
pub fn batch(table: &'static str, schema: &SchemaRef, columns: Vec<arrow::array::ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|source| Error::Arrow { table, source })
}
