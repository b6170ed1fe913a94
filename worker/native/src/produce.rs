//! Producing a block's messages through librdkafka, without copying their values, and summing
//! the crc32 of the rows' values as they go.

use std::ffi::{c_int, CStr, CString};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::encode::Encoded;
use crate::flight::{Flight, Keep, Tracker};
use crate::rdkafka::{api, Vu, ERR_FATAL, ERR_NO_ERROR, ERR_QUEUE_FULL, ERR_STATE};
use crate::scan::BlockData;

const SOURCE: &CStr = c"csvkafka.source";
const ROW: &CStr = c"csvkafka.row";
const SHARD: &CStr = c"csvkafka.shard";
const OFFSET: &CStr = c"csvkafka.offset";
const REASON: &CStr = c"csvkafka.reason";
const TRUNCATED: &CStr = c"csvkafka.truncated-from";
/// Per-record overhead of the v2 record format, as librdkafka counts it against message.max.bytes.
const RECORD_OVERHEAD: usize = 64;
/// RD_KAFKA_RESP_ERR__DESTROY: the producer went away before the message was sent.
const ERR_DESTROY: c_int = -197;

/// What to send of one encoded block.
pub struct Job {
    block: Arc<BlockData>,
    encoded: Arc<Encoded>,
    /// The sendable rows to send: those before the first record at or after `stop`.
    rows: usize,
    topic: CString,
    source: Vec<u8>,
    row_headers: bool,
    shard: Option<Vec<u8>>,
    first_row: u64,
    dead_letters: Vec<(usize, String)>,
    dead_letter_topic: Option<CString>,
    max_message: usize,
}

impl Job {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        block: Arc<BlockData>,
        encoded: Arc<Encoded>,
        stop: usize,
        topic: &str,
        source: Vec<u8>,
        row_headers: bool,
        shard: Option<Vec<u8>>,
        first_row: u64,
        dead_letters: Vec<(usize, String)>,
        dead_letter_topic: Option<&str>,
        max_message: usize,
    ) -> Result<Job, String> {
        if let Some(&(index, _)) = dead_letters.iter().find(|(i, _)| *i >= block.records.len()) {
            return Err(format!("dead letter {index} is not a record of the block"));
        }
        if !dead_letters.is_empty() && dead_letter_topic.is_none() {
            return Err("dead letters need a dead-letter topic".into());
        }
        let name = |t: &str| CString::new(t).map_err(|_| format!("topic name {t:?} holds a NUL"));
        let rows = encoded
            .items
            .partition_point(|item| (item.record as usize) < stop);
        Ok(Job {
            rows,
            topic: name(topic)?,
            row_headers,
            source,
            shard,
            first_row,
            dead_letter_topic: dead_letter_topic.map(name).transpose()?,
            dead_letters,
            max_message,
            block,
            encoded,
        })
    }

    fn total(&self) -> usize {
        self.rows + self.dead_letters.len()
    }

    fn row_number(&self, record: usize) -> u64 {
        self.first_row + self.block.ordinal(record) as u64 - 1
    }

    /// The value of row `n` (n < rows).
    fn value(&self, n: usize) -> &[u8] {
        let (start, len) = self.encoded.items[n].value;
        let (start, len) = (start as usize, len as usize);
        if self.encoded.json {
            &self.encoded.values[start..start + len]
        } else {
            &self.block.data[start..start + len]
        }
    }
}

/// A block being produced: `produce` can stop when librdkafka's queue stays full, and go on later.
/// Once all of it is produced the job is dropped: from then on only what the messages point into
/// stays alive, in the tracker, until the last acknowledgement.
pub struct Sending {
    tracker: Arc<Tracker>,
    flight: Arc<Flight>,
    job: Option<Job>,
    total: usize,
    next: usize,
    /// Sum (mod 2**64) of the crc32 of the row values produced so far.
    checksum: u64,
}

impl Sending {
    pub fn open(tracker: Arc<Tracker>, job: Job) -> Sending {
        let span = |bytes: &[u8]| {
            (
                bytes.as_ptr() as usize,
                bytes.as_ptr() as usize + bytes.len(),
            )
        };
        // json rows point into the encoded values, line rows and dead letters into the block's bytes.
        let needs_block = !job.encoded.json || !job.dead_letters.is_empty();
        let mut ranges = vec![span(&job.encoded.values)];
        let keep: Keep = if needs_block {
            ranges.push(span(&job.block.data));
            Box::new((job.block.clone(), job.encoded.clone()))
        } else {
            Box::new(job.encoded.clone())
        };
        let dead_letters = job
            .dead_letters
            .iter()
            .map(|&(index, _)| job.block.content(index).as_ptr() as usize)
            .collect();
        let total = job.total();
        let flight = tracker.open(total, ranges, dead_letters, keep);
        Sending {
            tracker,
            flight,
            job: Some(job),
            total,
            next: 0,
            checksum: 0,
        }
    }

    /// Sum (mod 2**64) of zlib's crc32 of every row value produced (dead letters excluded).
    pub fn checksum(&self) -> u64 {
        self.checksum
    }

    pub fn flight(&self) -> &Flight {
        &self.flight
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// Produces the rest; Ok(false) when the queue stayed full for `max_wait`.
    pub fn produce(&mut self, max_wait: Duration) -> Result<bool, String> {
        let Some(job) = self.job.as_ref() else {
            return Ok(true);
        };
        let api = api()?;
        let rk = self.tracker.rk();
        if rk.is_null() {
            self.give_up(ERR_DESTROY);
            return Err("the Kafka producer was closed while rows were being sent".into());
        }
        let mut full_since: Option<Instant> = None;
        let mut vus: Vec<Vu> = Vec::with_capacity(10);
        let mut numbers = Numbers::default();
        // One CreateTime per call (ms resolution): the rows of a block are produced within it anyway.
        numbers.timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut fatal = None;
        while self.next < self.total {
            vus.clear();
            job.message(self.next, &mut vus, &mut numbers);
            let code = unsafe {
                let error = (api.produceva)(rk, vus.as_ptr(), vus.len());
                if error.is_null() {
                    ERR_NO_ERROR
                } else {
                    let code = (api.error_code)(error);
                    (api.error_destroy)(error);
                    code
                }
            };
            match code {
                ERR_NO_ERROR => {
                    if self.next < job.rows {
                        let crc = crc32fast::hash(job.value(self.next));
                        self.checksum = self.checksum.wrapping_add(u64::from(crc));
                    }
                    self.next += 1;
                    full_since = None;
                }
                ERR_QUEUE_FULL => {
                    let since = *full_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= max_wait {
                        return Ok(false);
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                ERR_FATAL | ERR_STATE => {
                    // Nothing more can be produced on this handle: the rest fails at once.
                    fatal = Some(code);
                    break;
                }
                _ => {
                    self.tracker.settle(&self.flight, 1, code);
                    self.next += 1;
                }
            }
        }
        match fatal {
            Some(code) => self.give_up(code),
            None => self.job = None,
        }
        Ok(true)
    }

    fn give_up(&mut self, code: c_int) {
        let rest = (self.total - self.next) as i64;
        if rest > 0 {
            self.tracker.settle(&self.flight, rest, code);
        }
        self.next = self.total;
        self.job = None;
    }
}

impl Job {
    /// The vus of message `n`: a row, or after the rows a dead letter.
    fn message(&self, n: usize, vus: &mut Vec<Vu>, numbers: &mut Numbers) {
        let job = self;
        if n < job.rows {
            let item = job.encoded.items[n];
            vus.push(Vu::topic(&job.topic));
            vus.push(Vu::value(job.value(n)));
            if let Some((start, len)) = item.key {
                vus.push(Vu::key(
                    &job.encoded.keys[start as usize..(start + len) as usize],
                ));
            }
            vus.push(Vu::no_copy());
            vus.push(Vu::timestamp(numbers.timestamp));
            if job.row_headers {
                vus.push(Vu::header(SOURCE, &job.source));
                vus.push(Vu::header(
                    ROW,
                    numbers.row.format(job.row_number(item.record as usize)),
                ));
                if let Some(shard) = &job.shard {
                    vus.push(Vu::header(SHARD, shard));
                }
            }
            return;
        }
        let (index, reason) = &job.dead_letters[n - job.rows];
        let content = job.block.content(*index);
        let topic = job.dead_letter_topic.as_ref().expect("checked in Job::new");
        let row = numbers.row.format(job.row_number(*index));
        let offset = numbers
            .offset
            .format(job.block.start + job.block.record_start(*index) as u64);
        let headers = [
            (SOURCE, job.source.as_slice()),
            (ROW, row),
            (OFFSET, offset),
            (REASON, reason.as_bytes()),
        ];
        let header_bytes: usize = headers
            .iter()
            .map(|(k, v)| k.to_bytes().len() + v.len())
            .sum();
        // At least one byte: an empty payload could not be matched to its block when acknowledged.
        let room = job
            .max_message
            .saturating_sub(RECORD_OVERHEAD + header_bytes + 1024)
            .max(1);
        vus.push(Vu::topic(topic));
        vus.push(Vu::value(&content[..content.len().min(room)]));
        vus.push(Vu::no_copy());
        vus.push(Vu::timestamp(numbers.timestamp));
        for (name, value) in headers {
            vus.push(Vu::header(name, value));
        }
        if content.len() > room {
            vus.push(Vu::header(
                TRUNCATED,
                numbers.size.format(content.len() as u64),
            ));
        }
    }
}

impl Drop for Sending {
    /// A block abandoned before all of it was produced: what was not produced fails, so that the
    /// block still completes and its buffers are freed.
    fn drop(&mut self) {
        if self.next < self.total {
            self.give_up(ERR_DESTROY);
        }
    }
}

/// Decimal digits of header values (librdkafka copies header values while producing).
#[derive(Default)]
struct Numbers {
    timestamp: i64,
    row: Digits,
    offset: Digits,
    size: Digits,
}

#[derive(Default)]
struct Digits {
    buf: [u8; 20],
}

impl Digits {
    fn format(&mut self, mut n: u64) -> &[u8] {
        let mut at = self.buf.len();
        loop {
            at -= 1;
            self.buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        &self.buf[at..]
    }
}
