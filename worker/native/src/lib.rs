//! csvkafka's native core: the worker's per-row loop, a block at a time, outside Python.
//!
//! `Scanner` cuts the stream into record-aligned blocks (csv.rs: the csv module's state machine),
//! `Encoder` turns a block's records into values and keys (encode.rs), and `Link.send` hands them
//! to the librdkafka producer that confluent-kafka created (flight.rs, rdkafka.rs), with the GIL
//! released throughout. Python keeps everything else: I/O, policy, transactions, checkpoints.

mod csv;
mod encode;
mod flight;
mod produce;
mod rdkafka;
mod scan;

use std::sync::Arc;

use pyo3::create_exception;
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::csv::{Dialect, STATES};

create_exception!(
    _native,
    RecordTooLarge,
    PyValueError,
    "No record boundary within the size limit: args are (offset, rows_before)."
);

/// The bytes that structure a CSV stream, as the csv module's dialect names them.
#[pyclass(name = "Dialect", frozen, module = "csvkafka_worker._native")]
struct PyDialect {
    inner: Dialect,
}

#[pymethods]
impl PyDialect {
    #[new]
    #[pyo3(signature = (*, delimiter, quote, escape, doublequote))]
    fn new(delimiter: u8, quote: u8, escape: Option<u8>, doublequote: bool) -> Self {
        PyDialect {
            inner: Dialect {
                delimiter,
                quote,
                escape: escape.map_or(256, u16::from),
                doublequote,
            },
        }
    }
}

fn too_large(error: scan::TooLarge) -> PyErr {
    RecordTooLarge::new_err((error.offset, error.rows_before))
}

/// A record-aligned block of the stream with the offsets of its records.
#[pyclass(frozen, module = "csvkafka_worker._native")]
struct Block {
    inner: Arc<scan::BlockData>,
}

impl Block {
    fn check(&self, i: usize) -> PyResult<()> {
        if i >= self.inner.records.len() {
            return Err(PyIndexError::new_err(format!(
                "record {i} of a block of {}",
                self.inner.records.len()
            )));
        }
        Ok(())
    }
}

#[pymethods]
impl Block {
    /// Stream offset of the block's first byte.
    #[getter]
    fn start(&self) -> u64 {
        self.inner.start
    }
    #[getter]
    fn size(&self) -> usize {
        self.inner.data.len()
    }
    /// Records, blank ones included.
    #[getter]
    fn count(&self) -> usize {
        self.inner.records.len()
    }
    /// Records that are rows (not blank).
    #[getter]
    fn rows(&self) -> usize {
        self.inner.rows()
    }
    #[getter]
    fn unterminated(&self) -> bool {
        self.inner.unterminated
    }
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.data)
    }
    /// The content of record `i` (without its line terminator).
    fn record<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyBytes>> {
        self.check(i)?;
        Ok(PyBytes::new(py, self.inner.content(i)))
    }
    /// Where record `i` starts, within the block.
    fn record_start(&self, i: usize) -> PyResult<usize> {
        self.check(i)?;
        Ok(self.inner.record_start(i))
    }
    /// Where record `i`'s line terminator starts, within the block.
    fn content_end(&self, i: usize) -> PyResult<usize> {
        self.check(i)?;
        Ok(self.inner.records[i].content_end as usize)
    }
    /// Where the record after `i` starts, within the block.
    fn record_end(&self, i: usize) -> PyResult<usize> {
        self.check(i)?;
        Ok(self.inner.records[i].end as usize)
    }
    /// 1-based position of record `i` among the block's rows.
    fn ordinal(&self, i: usize) -> PyResult<usize> {
        self.check(i)?;
        Ok(self.inner.ordinal(i))
    }
}

/// Cuts a byte stream into record-aligned blocks, scanning each byte once.
#[pyclass(module = "csvkafka_worker._native")]
struct Scanner {
    inner: scan::Scanner,
}

#[pymethods]
impl Scanner {
    #[new]
    /// `state` other than 0 (START_RECORD): the stream starts inside a record (shard boundaries).
    #[pyo3(signature = (dialect, *, start, max_record, state=0))]
    fn new(dialect: &PyDialect, start: u64, max_record: usize, state: usize) -> PyResult<Self> {
        let state = *STATES
            .get(state)
            .ok_or_else(|| PyValueError::new_err(format!("no state {state}")))?;
        let mut inner = scan::Scanner::new(dialect.inner, start, max_record);
        inner.set_state(state);
        Ok(Scanner { inner })
    }

    /// Stream offset of the first byte not yet returned in a block.
    #[getter]
    fn offset(&self) -> u64 {
        self.inner.offset()
    }

    /// Adds a chunk; returns the records completed so far as a block, if any.
    fn feed(&mut self, py: Python<'_>, chunk: &[u8]) -> PyResult<Option<Block>> {
        let inner = &mut self.inner;
        let found = py.detach(|| inner.feed(chunk)).map_err(too_large)?;
        Ok(found.map(|data| Block {
            inner: Arc::new(data),
        }))
    }

    /// The end of the input: the rest is the last record.
    fn finish(&mut self, py: Python<'_>) -> PyResult<Option<Block>> {
        let inner = &mut self.inner;
        let found = py.detach(|| inner.finish()).map_err(too_large)?;
        Ok(found.map(|data| Block {
            inner: Arc::new(data),
        }))
    }
}

/// What the machine's state is after `data[:length]` for each of its 9 start states (as digits),
/// having seen `data[length]`, if there, only to tell whether a `\r` ends a line.
#[pyfunction]
#[pyo3(signature = (data, length, dialect))]
fn transfer(py: Python<'_>, data: &[u8], length: usize, dialect: &PyDialect) -> String {
    let d = dialect.inner;
    let states = py.detach(|| csv::transfer(d, data, length.min(data.len())));
    states.iter().map(|s| char::from(b'0' + *s as u8)).collect()
}

/// A block's values and keys, and its records that cannot be sent.
#[pyclass(frozen, module = "csvkafka_worker._native")]
struct Encoded {
    inner: Arc<encode::Encoded>,
    block: Arc<scan::BlockData>,
}

impl Encoded {
    fn value(&self, item: &encode::Item) -> &[u8] {
        let (start, len) = (item.value.0 as usize, item.value.1 as usize);
        let source = if self.inner.json {
            &self.inner.values
        } else {
            &self.block.data
        };
        &source[start..start + len]
    }
}

#[pymethods]
impl Encoded {
    /// (record index, kind, a, b) per record that cannot be sent; kind 1: not valid UTF-8 at
    /// byte a; 2: a fields where the header has b; 3: ends inside quotes; 4: value of a bytes.
    #[getter]
    fn bad(&self) -> Vec<(u32, u8, usize, usize)> {
        self.inner
            .bad
            .iter()
            .map(|&(i, bad)| match bad {
                encode::Bad::Encoding(at) => (i, 1, at, 0),
                encode::Bad::Fields(count, width) => (i, 2, count, width),
                encode::Bad::Unterminated => (i, 3, 0, 0),
                encode::Bad::Oversized(size) => (i, 4, size, 0),
            })
            .collect()
    }
    /// Sendable rows.
    #[getter]
    fn sendable(&self) -> usize {
        self.inner.items.len()
    }
    /// Sendable rows of records before `stop`.
    fn sendable_before(&self, stop: u32) -> usize {
        self.inner.items.partition_point(|item| item.record < stop)
    }
    /// The record index of each sendable row.
    fn indices(&self) -> Vec<u32> {
        self.inner.items.iter().map(|item| item.record).collect()
    }
    fn values<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.inner
            .items
            .iter()
            .map(|item| PyBytes::new(py, self.value(item)))
            .collect()
    }
    fn keys<'py>(&self, py: Python<'py>) -> Option<Vec<Bound<'py, PyBytes>>> {
        let keyed = self
            .inner
            .items
            .first()
            .is_some_and(|item| item.key.is_some());
        keyed.then(|| {
            self.inner
                .items
                .iter()
                .map(|item| {
                    let (start, len) = item.key.map_or((0, 0), |(s, l)| (s as usize, l as usize));
                    PyBytes::new(py, &self.inner.keys[start..start + len])
                })
                .collect()
        })
    }
}

#[pyclass(frozen, module = "csvkafka_worker._native")]
struct Encoder {
    inner: encode::Encoder,
}

#[pymethods]
impl Encoder {
    #[new]
    /// `encoding`: a Python codec name (codecs.lookup(...).name) the native core reads.
    #[pyo3(signature = (dialect, *, encoding, names, json, key_index, max_value))]
    fn new(
        dialect: &PyDialect,
        encoding: &str,
        names: Vec<String>,
        json: bool,
        key_index: Option<usize>,
        max_value: usize,
    ) -> PyResult<Self> {
        if names.is_empty() {
            return Err(PyValueError::new_err("no column names"));
        }
        let d = dialect.inner;
        let charset = encode::Charset::named(encoding).ok_or_else(|| {
            PyValueError::new_err(format!("the native core does not read {encoding}"))
        })?;
        Ok(Encoder {
            inner: encode::Encoder::new(d, charset, &names, json, key_index, max_value),
        })
    }

    fn encode(&self, py: Python<'_>, block: &Block) -> Encoded {
        let data = block.inner.clone();
        let inner = &self.inner;
        let encoded = py.detach(|| inner.encode(&data));
        Encoded {
            inner: Arc::new(encoded),
            block: data,
        }
    }
}

/// The native side of one confluent-kafka Producer.
#[pyclass(frozen, module = "csvkafka_worker._native")]
struct Link {
    tracker: Arc<flight::Tracker>,
}

#[pymethods]
impl Link {
    /// Starts sending a block: its sendable rows with a record index below `stop` to `topic`, then
    /// `dead_letters` ((record index, reason) pairs) to `dead_letter_topic`. `produce` sends.
    /// Rows carry the headers csvkafka.source, csvkafka.row (and csvkafka.shard) if `row_headers`;
    /// dead letters always carry csvkafka.source, .row, .offset and .reason.
    #[pyo3(signature = (encoded, *, stop, topic, source, row_headers, shard, first_row, dead_letters, dead_letter_topic, max_message))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        encoded: &Encoded,
        stop: usize,
        topic: &str,
        source: Vec<u8>,
        row_headers: bool,
        shard: Option<Vec<u8>>,
        first_row: u64,
        dead_letters: Vec<(usize, String)>,
        dead_letter_topic: Option<&str>,
        max_message: usize,
    ) -> PyResult<Flight> {
        let job = produce::Job::new(
            encoded.block.clone(),
            encoded.inner.clone(),
            stop,
            topic,
            source,
            row_headers,
            shard,
            first_row,
            dead_letters,
            dead_letter_topic,
            max_message,
        )
        .map_err(PyValueError::new_err)?;
        Ok(Flight {
            job: produce::Sending::open(self.tracker.clone(), job),
        })
    }
}

/// One block's messages: sent by `produce`, acknowledged by librdkafka's threads.
#[pyclass(module = "csvkafka_worker._native")]
struct Flight {
    job: produce::Sending,
}

#[pymethods]
impl Flight {
    /// Produces what is left; False if the producer's queue stayed full for `max_wait` seconds
    /// (serve delivery reports with Producer.poll, then call again).
    fn produce(&mut self, py: Python<'_>, max_wait: f64) -> PyResult<bool> {
        let job = &mut self.job;
        py.detach(|| job.produce(std::time::Duration::from_secs_f64(max_wait.max(0.0))))
            .map_err(PyRuntimeError::new_err)
    }
    /// Messages not yet acknowledged (produced or still to produce).
    #[getter]
    fn outstanding(&self) -> i64 {
        self.job.flight().outstanding()
    }
    /// Messages that failed: not accepted, not delivered, or purged.
    #[getter]
    fn failed(&self) -> u64 {
        self.job.flight().failed()
    }
    /// librdkafka error codes of the first failures.
    #[getter]
    fn errors(&self) -> Vec<i32> {
        self.job.flight().errors()
    }
    #[getter]
    fn messages(&self) -> usize {
        self.job.total()
    }
    /// Sum (mod 2**64) of zlib's crc32 of the row values produced (dead letters excluded).
    #[getter]
    fn checksum(&self) -> u64 {
        self.job.checksum()
    }
    /// (partition, first offset, last offset) Kafka acknowledged for the rows so far.
    #[getter]
    fn offsets(&self) -> Vec<(i32, i64, i64)> {
        self.job.flight().offsets()
    }
}

/// None when the native producer path can be used here, else why not.
#[pyfunction]
fn check() -> Option<String> {
    rdkafka::api().err()
}

/// The version of the librdkafka this library drives (as rd_kafka_version() gives it).
#[pyfunction]
fn librdkafka_version() -> PyResult<i32> {
    rdkafka::api()
        .map(|api| api.version)
        .map_err(PyRuntimeError::new_err)
}

/// Keeps freed block buffers in the heap for the next blocks (glibc only): without it, every 1 MiB
/// block is a fresh mmap whose pages fault in one by one, and are given back when it is freed.
/// Process-wide, so the worker asks for it; importing this module changes nothing.
#[pyfunction]
fn keep_freed_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024 * 1024) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, 32 * 1024 * 1024) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

#[pyfunction]
fn new_token() -> u64 {
    flight::new_token()
}

/// The native side of the producer created with `token` in its configuration.
#[pyfunction]
fn attach(token: u64) -> PyResult<Link> {
    flight::attach(token)
        .map(|tracker| Link { tracker })
        .ok_or_else(|| {
            PyRuntimeError::new_err(
                "the producer did not load csvkafka's plugin (plugin.library.paths)",
            )
        })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("RecordTooLarge", m.py().get_type::<RecordTooLarge>())?;
    m.add("TOKEN_PROPERTY", flight::TOKEN_PROPERTY)?;
    m.add_class::<PyDialect>()?;
    m.add_class::<Block>()?;
    m.add_class::<Scanner>()?;
    m.add_class::<Encoded>()?;
    m.add_class::<Encoder>()?;
    m.add_class::<Link>()?;
    m.add_class::<Flight>()?;
    m.add_function(wrap_pyfunction!(transfer, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(librdkafka_version, m)?)?;
    m.add_function(wrap_pyfunction!(new_token, m)?)?;
    m.add_function(wrap_pyfunction!(keep_freed_buffers, m)?)?;
    m.add_function(wrap_pyfunction!(attach, m)?)?;
    Ok(())
}
