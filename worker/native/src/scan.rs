//! Cutting a byte stream into record-aligned blocks, with every record's offsets.

use crate::csv::{Dialect, Machine, NoFields, State};

/// One record of a block: `[start, content_end)` is its content, `[content_end, end)` its line
/// terminator; it starts where the previous record ends (or at 0).
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub content_end: u32,
    pub end: u32,
}

/// Record-aligned bytes of the stream, starting at stream offset `start`.
pub struct BlockData {
    pub data: Vec<u8>,
    pub start: u64,
    pub records: Vec<Record>,
    /// Indices of blank records (no content: not rows), ascending.
    pub blanks: Vec<u32>,
    /// The last record ends inside a quoted field (only at the end of the input).
    pub unterminated: bool,
}

impl BlockData {
    pub fn record_start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.records[i - 1].end as usize
        }
    }

    pub fn content(&self, i: usize) -> &[u8] {
        &self.data[self.record_start(i)..self.records[i].content_end as usize]
    }

    /// The record with its terminator, as the csv module reads it.
    pub fn with_terminator(&self, i: usize) -> &[u8] {
        &self.data[self.record_start(i)..self.records[i].end as usize]
    }

    pub fn rows(&self) -> usize {
        self.records.len() - self.blanks.len()
    }

    /// 1-based position of record `i` among the block's rows (blank records are not rows).
    pub fn ordinal(&self, i: usize) -> usize {
        let blanks_up_to = self.blanks.partition_point(|&b| (b as usize) <= i);
        i + 1 - blanks_up_to
    }
}

/// No record boundary within the size limit after a record's start.
#[derive(Debug)]
pub struct TooLarge {
    /// Stream offset where the record begins.
    pub offset: u64,
    /// Rows completed by this scanner before it.
    pub rows_before: u64,
}

pub struct Scanner {
    machine: Machine,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Next byte of `buf` to scan.
    at: usize,
    /// Where the record being scanned starts in `buf`.
    record_start: usize,
    records: Vec<Record>,
    blanks: Vec<u32>,
    rows: u64,
    max_record: usize,
    /// A record too large, found after complete records that were returned first.
    too_large: Option<TooLarge>,
}

impl Scanner {
    pub fn new(d: Dialect, start: u64, max_record: usize) -> Self {
        Scanner {
            machine: Machine::new(d),
            buf: Vec::new(),
            base: start,
            at: 0,
            record_start: 0,
            records: Vec::new(),
            blanks: Vec::new(),
            rows: 0,
            max_record,
            too_large: None,
        }
    }

    /// Starts inside a record, in `state` (shard boundary search).
    pub fn set_state(&mut self, state: State) {
        self.machine.state = state;
    }

    /// Stream offset of the first byte not yet returned in a block.
    pub fn offset(&self) -> u64 {
        self.base
    }

    /// Adds a chunk; returns the complete records so far as a block, if there are any.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Option<BlockData>, TooLarge> {
        if let Some(error) = self.too_large.take() {
            return Err(error);
        }
        self.buf.extend_from_slice(chunk);
        self.scan(false)?;
        Ok(self.cut(false))
    }

    /// The end of the input: the rest is the last record, whether or not it has a terminator.
    pub fn finish(&mut self) -> Result<Option<BlockData>, TooLarge> {
        if let Some(error) = self.too_large.take() {
            return Err(error);
        }
        self.scan(true)?;
        let n = self.buf.len();
        let mut unterminated = false;
        if self.record_start < n {
            let pending = !matches!(self.buf[n - 1], b'\n' | b'\r');
            if !self.machine.end_of_input(pending, &mut NoFields) {
                unterminated = self.machine.in_quotes();
            }
            self.push(n, n);
        }
        let block = self.cut(unterminated);
        Ok(block)
    }

    fn scan(&mut self, eof: bool) -> Result<(), TooLarge> {
        loop {
            // Never read further than the size limit past the start of a record.
            // (One byte more than the limit: a \r there needs to see what follows it.)
            let limit = self.buf.len().min(self.record_start + self.max_record + 2);
            let found = self.machine.next_boundary(
                &self.buf[..limit],
                &mut self.at,
                eof && limit == self.buf.len(),
            );
            match found {
                Some((content_end, end)) => self.push(content_end, end),
                None => {
                    if limit < self.buf.len()
                        || (eof && self.buf.len() - self.record_start > self.max_record)
                    {
                        let error = TooLarge {
                            offset: self.base + self.record_start as u64,
                            rows_before: self.rows,
                        };
                        if self.records.is_empty() {
                            return Err(error);
                        }
                        // The complete records before it go out first; the error comes with the next call.
                        self.too_large = Some(error);
                    }
                    return Ok(());
                }
            }
        }
    }

    fn push(&mut self, content_end: usize, end: usize) {
        if content_end == self.record_start {
            self.blanks.push(self.records.len() as u32);
        } else {
            self.rows += 1;
        }
        self.records.push(Record {
            content_end: content_end as u32,
            end: end as u32,
        });
        self.record_start = end;
    }

    fn cut(&mut self, unterminated: bool) -> Option<BlockData> {
        if self.records.is_empty() {
            return None;
        }
        let size = self.record_start;
        let rest = self.buf[size..].to_vec();
        let mut data = std::mem::replace(&mut self.buf, rest);
        data.truncate(size);
        let block = BlockData {
            data,
            start: self.base,
            records: std::mem::take(&mut self.records),
            blanks: std::mem::take(&mut self.blanks),
            unterminated,
        };
        self.base += size as u64;
        self.at -= size;
        self.record_start = 0;
        Some(block)
    }
}
