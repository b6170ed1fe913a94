//! A block's records → Kafka values and keys, exactly as the Python encoder makes them:
//! `json` is what `orjson.dumps(dict(zip(header, row)))` gives for the csv module's row, `line`
//! the record's bytes; the key is the key column's field. Records that cannot be encoded are
//! reported with what is wrong, never dropped.

use crate::csv::{parse_record, Dialect, Fields};
use crate::scan::BlockData;

/// Why a record cannot be sent. The Python side words the reason.
#[derive(Clone, Copy, Debug)]
pub enum Bad {
    /// Not valid UTF-8 at this byte of the record.
    Encoding(usize),
    /// This many fields where the header has that many.
    Fields(usize, usize),
    /// The record ends inside a quoted field at the end of the input.
    Unterminated,
    /// The encoded value has this many bytes, more than a Kafka message may hold.
    Oversized(usize),
}

/// One sendable row: its record, and where its value and key are.
#[derive(Clone, Copy, Debug)]
pub struct Item {
    pub record: u32,
    /// In `Encoded::values` (json) or in the block's data (line).
    pub value: (u32, u32),
    /// In `Encoded::keys`; None without a key column.
    pub key: Option<(u32, u32)>,
}

pub struct Encoded {
    pub json: bool,
    pub values: Vec<u8>,
    pub keys: Vec<u8>,
    pub items: Vec<Item>,
    pub bad: Vec<(u32, Bad)>,
}

/// The text encodings the native core reads. Others run on the Python path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Charset {
    Utf8,
    Ascii,
    /// ISO-8859-1: every byte is the code point of the same number.
    Latin1,
    /// Windows-1252: Latin-1 but for 0x80-0x9F, five of which are undefined.
    Cp1252,
}

impl Charset {
    pub fn named(name: &str) -> Option<Charset> {
        match name {
            "utf-8" | "utf-8-sig" => Some(Charset::Utf8),
            "ascii" => Some(Charset::Ascii),
            "iso8859-1" | "latin-1" => Some(Charset::Latin1),
            "cp1252" => Some(Charset::Cp1252),
            _ => None,
        }
    }

    /// Where the bytes stop being valid text in this encoding, if they do.
    fn invalid_at(self, bytes: &[u8]) -> Option<usize> {
        match self {
            Charset::Utf8 => std::str::from_utf8(bytes).err().map(|e| e.valid_up_to()),
            Charset::Ascii => bytes.iter().position(|&c| c >= 0x80),
            Charset::Latin1 => None,
            Charset::Cp1252 => bytes
                .iter()
                .position(|&c| c & 0xe0 == 0x80 && CP1252_HIGH[(c & 0x1f) as usize] == 0),
        }
    }

    /// Whether bytes of 0x80 and above must be rewritten as UTF-8 in json values.
    fn transcodes(self) -> bool {
        matches!(self, Charset::Latin1 | Charset::Cp1252)
    }

    /// The Unicode code point of a byte of 0x80 or above (valid ones only).
    fn code_point(self, c: u8) -> u32 {
        match self {
            Charset::Cp1252 if c < 0xa0 => CP1252_HIGH[(c & 0x1f) as usize] as u32,
            _ => c as u32,
        }
    }
}

/// Windows-1252's 0x80-0x9F as code points (0: undefined), as Python's cp1252 codec has them.
const CP1252_HIGH: [u16; 32] = [
    0x20ac, 0, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039,
    0x0152, 0, 0x017d, 0, 0, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc,
    0x2122, 0x0161, 0x203a, 0x0153, 0, 0x017e, 0x0178,
];

pub struct Encoder {
    dialect: Dialect,
    charset: Charset,
    /// `{"name":"` for the first column, `","name":"` for the others, JSON-escaped.
    prefixes: Vec<Vec<u8>>,
    json: bool,
    key_index: Option<usize>,
    max_value: usize,
}

impl Encoder {
    pub fn new(
        dialect: Dialect,
        charset: Charset,
        names: &[String],
        json: bool,
        key_index: Option<usize>,
        max_value: usize,
    ) -> Self {
        let prefixes = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut p = Vec::with_capacity(name.len() + 6);
                p.extend_from_slice(if i == 0 { b"{\"" } else { b"\",\"" });
                escape_into(&mut p, name.as_bytes(), Charset::Utf8);
                p.extend_from_slice(b"\":\"");
                p
            })
            .collect();
        Encoder {
            dialect,
            charset,
            prefixes,
            json,
            key_index,
            max_value,
        }
    }

    fn width(&self) -> usize {
        self.prefixes.len()
    }

    pub fn encode(&self, block: &BlockData) -> Encoded {
        let n = block.records.len();
        let mut out = Encoded {
            json: self.json,
            values: Vec::with_capacity(if self.json {
                block.data.len() + block.data.len() / 2
            } else {
                0
            }),
            keys: Vec::new(),
            items: Vec::with_capacity(n),
            bad: Vec::new(),
        };
        let parse = self.json || self.key_index.is_some();
        for i in 0..n {
            let content = block.content(i);
            if content.is_empty() {
                continue; // a blank line: not a row
            }
            let last = i + 1 == n;
            if last && block.unterminated {
                out.bad.push((i as u32, Bad::Unterminated));
                continue;
            }
            if let Some(at) = self.charset.invalid_at(content) {
                out.bad.push((i as u32, Bad::Encoding(at)));
                continue;
            }
            let values_start = out.values.len();
            let key = if parse {
                match self.fields(content, block.with_terminator(i), &mut out) {
                    Ok(key) => key,
                    Err(bad) => {
                        out.bad.push((i as u32, bad));
                        continue;
                    }
                }
            } else {
                None
            };
            let value = if self.json {
                out.values.push(b'}');
                (
                    values_start as u32,
                    (out.values.len() - values_start) as u32,
                )
            } else {
                (block.record_start(i) as u32, content.len() as u32)
            };
            if value.1 as usize > self.max_value {
                if self.json {
                    out.values.truncate(value.0 as usize);
                }
                out.bad.push((i as u32, Bad::Oversized(value.1 as usize)));
                continue;
            }
            out.items.push(Item {
                record: i as u32,
                value,
                key,
            });
        }
        // The values live until their last acknowledgement: give back the growth slack now.
        out.values.shrink_to_fit();
        out
    }

    /// Parses a record: its json value goes to `out.values` (all but the closing brace), its key
    /// field to `out.keys`. On a wrong field count nothing is left in either.
    ///
    /// `content` is the record without its terminator, `record` with it.
    fn fields(
        &self,
        content: &[u8],
        record: &[u8],
        out: &mut Encoded,
    ) -> Result<Option<(u32, u32)>, Bad> {
        let values_start = out.values.len();
        let keys_start = out.keys.len();
        let mut sink = JsonFields {
            values: &mut out.values,
            keys: &mut out.keys,
            prefixes: &self.prefixes,
            charset: self.charset,
            json: self.json,
            key_index: self.key_index,
            field: 0,
            started: false,
        };
        if !simple_fields(&self.dialect, content, &mut sink) {
            // Undo what the shortcut wrote, and let the machine read the record.
            sink.values.truncate(values_start);
            sink.keys.truncate(keys_start);
            sink.field = 0;
            sink.started = false;
            parse_record(self.dialect, record, &mut sink);
        }
        let count = sink.field;
        if count != self.width() {
            out.values.truncate(values_start);
            out.keys.truncate(keys_start);
            return Err(Bad::Fields(count, self.width()));
        }
        Ok(self
            .key_index
            .map(|_| (keys_start as u32, (out.keys.len() - keys_start) as u32)))
    }
}

/// The fields of the records most files are made of, without the state machine: unquoted fields,
/// and quoted ones that close right before a delimiter or the end with no quote inside (no doubled
/// quote). The machine reads exactly these fields from such records. False, with some fields
/// already given to `f`, for any other record (an escape character, a doubled quote, data after
/// a closing quote, a quote left open): the caller starts over with the machine.
fn simple_fields<F: Fields>(d: &Dialect, content: &[u8], f: &mut F) -> bool {
    if d.escape < 256 && memchr::memchr(d.escape as u8, content).is_some() {
        return false;
    }
    let n = content.len();
    let mut at = 0;
    loop {
        if at < n && content[at] == d.quote {
            let Some(close) = memchr::memchr(d.quote, &content[at + 1..]).map(|j| at + 1 + j)
            else {
                return false;
            };
            if close + 1 < n && content[close + 1] != d.delimiter {
                return false;
            }
            f.add_run(&content[at + 1..close]);
            f.save();
            if close + 1 >= n {
                return true;
            }
            at = close + 2;
        } else {
            match memchr::memchr(d.delimiter, &content[at..]) {
                Some(j) => {
                    f.add_run(&content[at..at + j]);
                    f.save();
                    at += j + 1;
                }
                None => {
                    f.add_run(&content[at..]);
                    f.save();
                    return true;
                }
            }
        }
        if at == n {
            // A delimiter ended the content: the last field is empty.
            f.add_run(&[]);
            f.save();
            return true;
        }
    }
}

/// Builds the json object while the record is parsed, escaping as orjson does.
struct JsonFields<'a> {
    values: &'a mut Vec<u8>,
    keys: &'a mut Vec<u8>,
    prefixes: &'a [Vec<u8>],
    charset: Charset,
    json: bool,
    key_index: Option<usize>,
    field: usize,
    started: bool,
}

impl JsonFields<'_> {
    #[inline(always)]
    fn start(&mut self) {
        if !self.started {
            self.started = true;
            if self.json {
                if let Some(prefix) = self.prefixes.get(self.field) {
                    self.values.extend_from_slice(prefix);
                }
            }
        }
    }

    #[inline(always)]
    fn wanted(&self) -> bool {
        self.field < self.prefixes.len()
    }
}

impl Fields for JsonFields<'_> {
    #[inline(always)]
    fn add(&mut self, c: u8) {
        self.add_run(std::slice::from_ref(&c));
    }

    #[inline(always)]
    fn add_run(&mut self, run: &[u8]) {
        self.start();
        if !self.wanted() {
            return;
        }
        if self.json {
            escape_into(self.values, run, self.charset);
        }
        if self.key_index == Some(self.field) {
            self.keys.extend_from_slice(run);
        }
    }

    #[inline(always)]
    fn save(&mut self) {
        self.start();
        if self.json && self.wanted() && self.field + 1 == self.prefixes.len() {
            self.values.push(b'"');
        }
        self.field += 1;
        self.started = false;
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        table[c] = true;
        c += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// JSON string escaping as orjson does it: `"` and `\`, the short forms \b \t \n \f \r, other
/// control characters as \u00xx (lowercase), everything else (DEL and non-ASCII included) as is.
#[inline(always)]
pub fn escape_into(out: &mut Vec<u8>, bytes: &[u8], charset: Charset) {
    let high = charset.transcodes();
    // Eight bytes at a time: most fields need no escaping at all.
    let mut word_start = 0;
    while word_start + 8 <= bytes.len() {
        let word = u64::from_le_bytes(bytes[word_start..word_start + 8].try_into().unwrap());
        if needs_escape(word) || (high && word & 0x8080_8080_8080_8080 != 0) {
            break;
        }
        word_start += 8;
    }
    let mut run = 0;
    for (i, &c) in bytes.iter().enumerate().skip(word_start) {
        if !NEEDS_ESCAPE[c as usize] && !(high && c >= 0x80) {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x80..=0xff => {
                let mut utf8 = [0u8; 4];
                let text = char::from_u32(charset.code_point(c))
                    .unwrap_or('\u{fffd}')
                    .encode_utf8(&mut utf8);
                out.extend_from_slice(text.as_bytes());
            }
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ]),
        }
    }
    out.extend_from_slice(&bytes[run..]);
}

/// Whether any of eight bytes is a control character, `"` or `\` (exact as a yes/no).
#[inline(always)]
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    (control | zero_byte(word ^ (ONES * b'"' as u64)) | zero_byte(word ^ (ONES * b'\\' as u64)))
        != 0
}
