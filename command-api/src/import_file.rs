//! Reading an uploaded import file (ADR 0020): CSV (RFC 4180: quoted fields, embedded commas
//! and newlines, CRLF, a UTF-8 BOM) or NDJSON, from the spooled file on disk, row by row —
//! never the whole file in memory. The header (or the first object's keys) must name the
//! known columns; a row the parser cannot read becomes a row error, not a refusal.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use api_common::error::ApiError;
use domain::import::MAX_ROWS;
use infra::imports::ERROR_FIELD;
use serde_json::{Map, Value, json};

/// The two formats an import accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    /// From the upload's `Content-Type`.
    pub fn of(content_type: &str) -> Option<Format> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/csv" => Some(Format::Csv),
            "application/x-ndjson" => Some(Format::Ndjson),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

type Rows = Box<dyn Iterator<Item = Value>>;

fn unreadable(reason: &str) -> Value {
    json!({ ERROR_FIELD: reason })
}

/// Opens the file, checks its columns and answers its rows (each a JSON object of the
/// row's columns, or an error marker).
fn open(path: &Path, format: Format) -> Result<Rows, ApiError> {
    let file = File::open(path).map_err(ApiError::internal)?;
    match format {
        Format::Csv => csv_rows(BufReader::new(file)),
        Format::Ndjson => ndjson_rows(BufReader::new(file)),
    }
}

fn csv_rows(input: BufReader<File>) -> Result<Rows, ApiError> {
    let mut records = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input)
        .into_byte_records();
    let header = match records.next() {
        None => return Err(ApiError::Validation("the file is empty".into())),
        Some(Err(_)) => return Err(ApiError::Validation("the header is not CSV".into())),
        Some(Ok(header)) => header,
    };
    let mut columns = Vec::new();
    for (index, field) in header.iter().enumerate() {
        let field = std::str::from_utf8(field)
            .map_err(|_| ApiError::Validation("the header is not UTF-8".into()))?;
        let field = if index == 0 {
            field.trim_start_matches('\u{feff}')
        } else {
            field
        };
        columns.push(field.trim().to_ascii_lowercase());
    }
    domain::import::check_columns(&columns)?;
    Ok(Box::new(records.map(move |record| {
        let Ok(record) = record else {
            return unreadable("the row is not valid CSV");
        };
        if record.len() != columns.len() {
            return unreadable(&format!(
                "the row has {} fields; the header has {}",
                record.len(),
                columns.len()
            ));
        }
        let mut object = Map::new();
        for (column, field) in columns.iter().zip(record.iter()) {
            match std::str::from_utf8(field) {
                Ok(text) => object.insert(column.clone(), Value::String(text.to_owned())),
                Err(_) => return unreadable(&format!("{column}: not UTF-8")),
            };
        }
        Value::Object(object)
    })))
}

fn ndjson_rows(input: BufReader<File>) -> Result<Rows, ApiError> {
    let mut lines = input
        .split(b'\n')
        .map(|line| {
            line.map(|mut bytes| {
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
                bytes
            })
        })
        .filter(|line| !matches!(line, Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace)));
    let first = match lines.next() {
        None => return Err(ApiError::Validation("the file is empty".into())),
        Some(Err(error)) => return Err(ApiError::internal(error)),
        Some(Ok(first)) => first,
    };
    let first = ndjson_row(&first);
    let Some(object) = first.as_object().filter(|o| !o.contains_key(ERROR_FIELD)) else {
        return Err(ApiError::Validation(
            "the first line is not a JSON object of strings".into(),
        ));
    };
    let columns: Vec<String> = object.keys().cloned().collect();
    domain::import::check_columns(&columns)?;
    Ok(Box::new(std::iter::once(first).chain(lines.map(
        |line| match line {
            Ok(bytes) => ndjson_row(&bytes),
            Err(_) => unreadable("the line could not be read"),
        },
    ))))
}

/// One NDJSON line as a row: an object whose values are strings (or null, read as empty).
fn ndjson_row(line: &[u8]) -> Value {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(line) else {
        return unreadable("the line is not a JSON object");
    };
    let mut row = Map::new();
    for (key, value) in object {
        if !domain::import::COLUMNS.contains(&key.as_str()) {
            return unreadable("the line has a field that is not a column");
        }
        match value {
            Value::String(text) => row.insert(key, Value::String(text)),
            Value::Null => row.insert(key, Value::String(String::new())),
            _ => return unreadable(&format!("{key}: not a string")),
        };
    }
    Value::Object(row)
}

/// Pass one: the columns are right and the file has 1 to [`MAX_ROWS`] rows; answers how
/// many.
pub fn count(path: &Path, format: Format) -> Result<u32, ApiError> {
    let mut total: u32 = 0;
    for _ in open(path, format)? {
        total += 1;
        if total > MAX_ROWS {
            return Err(ApiError::PayloadTooLarge(format!(
                "an import has at most {MAX_ROWS} rows"
            )));
        }
    }
    if total == 0 {
        return Err(ApiError::Validation("the file has no rows".into()));
    }
    Ok(total)
}

/// Pass two: every row with its number (1 is the first row after the header), in batches of
/// `size`; stops when `send` answers false.
pub fn read(
    path: &Path,
    format: Format,
    size: usize,
    mut send: impl FnMut(Vec<(i32, Value)>) -> bool,
) -> Result<(), ApiError> {
    let mut batch = Vec::with_capacity(size);
    for (index, row) in open(path, format)?.enumerate() {
        let number = i32::try_from(index + 1).map_err(ApiError::internal)?;
        batch.push((number, row));
        if batch.len() == size && !send(std::mem::replace(&mut batch, Vec::with_capacity(size))) {
            return Ok(());
        }
    }
    if !batch.is_empty() {
        send(batch);
    }
    Ok(())
}
