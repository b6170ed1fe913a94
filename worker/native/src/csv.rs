//! The csv module's reader, on bytes: the state machine of CPython's `Modules/_csv.c` (3.11),
//! with the line structure `io.StringIO(text, newline="")` gives it.
//!
//! A quote opens a quoted field only at a field's start; anywhere else it is data. Lines end after
//! `\n`, after `\r\n`, and after a `\r` not followed by `\n`; after each line the machine sees an
//! end-of-line event, and a record is complete when that event leaves it in `StartRecord`.
//! Every byte is looked at once, so scanning is linear in the input whatever it holds.
//!
//! On bytes this equals the csv module on text for every encoding in which the delimiter, quote,
//! escape, CR and LF are single bytes that never occur inside another character (UTF-8, Latin-1,
//! ASCII...): the Python side only routes such dialects here.

/// The reader's states, named as in `_csv.c`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum State {
    StartRecord = 0,
    StartField,
    EscapedChar,
    InField,
    InQuotedField,
    EscapeInQuotedField,
    QuoteInQuotedField,
    EatCrnl,
    AfterEscapedCrnl,
}

pub const STATES: [State; 9] = [
    State::StartRecord,
    State::StartField,
    State::EscapedChar,
    State::InField,
    State::InQuotedField,
    State::EscapeInQuotedField,
    State::QuoteInQuotedField,
    State::EatCrnl,
    State::AfterEscapedCrnl,
];

#[derive(Clone, Copy, Debug)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: u8,
    /// 256 means none (no byte equals it).
    pub escape: u16,
    pub doublequote: bool,
}

impl Dialect {
    #[inline(always)]
    fn is_escape(&self, c: u8) -> bool {
        c as u16 == self.escape
    }
}

/// What the machine does with a record's content: nothing (boundaries only) or build fields.
pub trait Fields {
    /// A data byte of the current field.
    fn add(&mut self, c: u8);
    /// Data bytes of the current field, none of them special in the state they were read in.
    fn add_run(&mut self, run: &[u8]) {
        for &c in run {
            self.add(c);
        }
    }
    /// The current field ends.
    fn save(&mut self);
}

/// Boundaries only.
pub struct NoFields;

impl Fields for NoFields {
    #[inline(always)]
    fn add(&mut self, _c: u8) {}
    #[inline(always)]
    fn add_run(&mut self, _run: &[u8]) {}
    #[inline(always)]
    fn save(&mut self) {}
}

#[derive(Clone, Copy)]
pub struct Machine {
    pub state: State,
    pub d: Dialect,
}

impl Machine {
    pub fn new(d: Dialect) -> Self {
        Machine {
            state: State::StartRecord,
            d,
        }
    }

    /// One byte of a line (terminators included).
    #[inline(always)]
    pub fn byte<F: Fields>(&mut self, c: u8, f: &mut F) {
        let d = self.d;
        let newline = c == b'\n' || c == b'\r';
        match self.state {
            State::StartRecord | State::StartField => {
                if self.state == State::StartRecord && newline {
                    self.state = State::EatCrnl;
                } else if newline {
                    f.save();
                    self.state = State::EatCrnl;
                } else if c == d.quote {
                    self.state = State::InQuotedField;
                } else if d.is_escape(c) {
                    self.state = State::EscapedChar;
                } else if c == d.delimiter {
                    f.save();
                    self.state = State::StartField;
                } else {
                    f.add(c);
                    self.state = State::InField;
                }
            }
            State::EscapedChar => {
                f.add(c);
                self.state = if newline {
                    State::AfterEscapedCrnl
                } else {
                    State::InField
                };
            }
            // After an escaped line break the reader goes on as in an unquoted field, but stays in
            // this state (so that the end of that line does not end the record) until a
            // delimiter, escape or line break.
            State::AfterEscapedCrnl | State::InField => {
                if newline {
                    f.save();
                    self.state = State::EatCrnl;
                } else if d.is_escape(c) {
                    self.state = State::EscapedChar;
                } else if c == d.delimiter {
                    f.save();
                    self.state = State::StartField;
                } else {
                    f.add(c);
                }
            }
            State::InQuotedField => {
                if d.is_escape(c) {
                    self.state = State::EscapeInQuotedField;
                } else if c == d.quote {
                    self.state = if d.doublequote {
                        State::QuoteInQuotedField
                    } else {
                        State::InField
                    };
                } else {
                    f.add(c);
                }
            }
            State::EscapeInQuotedField => {
                f.add(c);
                self.state = State::InQuotedField;
            }
            State::QuoteInQuotedField => {
                if c == d.quote {
                    f.add(c);
                    self.state = State::InQuotedField;
                } else if c == d.delimiter {
                    f.save();
                    self.state = State::StartField;
                } else if newline {
                    f.save();
                    self.state = State::EatCrnl;
                } else {
                    // strict=False: the character is data and the field goes on unquoted.
                    f.add(c);
                    self.state = State::InField;
                }
            }
            State::EatCrnl => {}
        }
    }

    /// The end of a line.
    #[inline(always)]
    pub fn eol<F: Fields>(&mut self, f: &mut F) {
        match self.state {
            State::StartRecord | State::InQuotedField | State::AfterEscapedCrnl => {}
            State::StartField | State::InField | State::QuoteInQuotedField => {
                f.save();
                self.state = State::StartRecord;
            }
            State::EscapedChar => {
                f.add(b'\n');
                self.state = State::InField;
            }
            State::EscapeInQuotedField => {
                f.add(b'\n');
                self.state = State::InQuotedField;
            }
            State::EatCrnl => self.state = State::StartRecord,
        }
    }

    /// Runs the machine over `data[at..]` until a record completes or the data runs out, telling
    /// `f` the fields. Runs of bytes that cannot change the state are found with SIMD searches and
    /// handed over whole; every other byte goes through `byte` (and `eol` after a line break).
    ///
    /// Returns `Some((content_end, end))` for a completed record: where its last line's terminator
    /// starts and where the next record starts. `None` when more data is needed: `at` is then
    /// left on the first byte not yet consumed (a `\r` at the very end waits to see whether a `\n`
    /// follows, unless `eof`).
    #[inline(always)]
    pub fn next_record<F: Fields>(
        &mut self,
        data: &[u8],
        at: &mut usize,
        eof: bool,
        f: &mut F,
    ) -> Option<(usize, usize)> {
        let d = self.d;
        let n = data.len();
        let mut i = *at;
        while i < n {
            let found = match self.state {
                // Quoted: line breaks are data and the end of a line does nothing.
                State::InQuotedField if d.escape < 256 => {
                    Some(memchr::memchr2(d.quote, d.escape as u8, &data[i..]))
                }
                State::InQuotedField => Some(memchr::memchr(d.quote, &data[i..])),
                State::InField | State::AfterEscapedCrnl if d.escape < 256 => {
                    Some(find4(&data[i..], d.delimiter, d.escape as u8, b'\r', b'\n'))
                }
                State::InField | State::AfterEscapedCrnl => {
                    Some(memchr::memchr3(d.delimiter, b'\r', b'\n', &data[i..]))
                }
                _ => None,
            };
            if let Some(found) = found {
                let stop = found.map_or(n, |j| i + j);
                if stop > i {
                    f.add_run(&data[i..stop]);
                }
                i = stop;
                if i == n {
                    break;
                }
            }
            if data[i] == b'\r' && i + 1 == n && !eof {
                break; // is it \r\n? the next chunk tells
            }
            if let Some(record) = self.step(data, &mut i, f) {
                *at = i;
                return Some(record);
            }
        }
        *at = i;
        None
    }

    /// Feeds `data[*i]` (with the `\n` of a `\r\n`, and the end of the line after a line break)
    /// to the machine. Returns where the record's content and the record end if it just did. A `\r`
    /// that ends `data` is taken to end its line.
    #[inline(always)]
    fn step<F: Fields>(&mut self, data: &[u8], i: &mut usize, f: &mut F) -> Option<(usize, usize)> {
        let n = data.len();
        let at = *i;
        let c = data[at];
        let escaped = self.state == State::EscapedChar;
        if c == b'\r' {
            self.byte(c, f);
            if at + 1 < n && data[at + 1] == b'\n' {
                self.byte(b'\n', f);
                *i += 2;
            } else {
                *i += 1;
            }
            self.eol(f);
        } else {
            self.byte(c, f);
            *i += 1;
            if c == b'\n' {
                self.eol(f);
            }
        }
        // The content ends where the line's terminator starts: at this byte, unless it was an
        // escaped \r (data) before the \n that ended the record.
        let content_end = if escaped { at + 1 } else { at };
        (self.state == State::StartRecord).then_some((content_end, *i))
    }

    /// `next_record` for boundaries only, faster: it jumps over the bytes that cannot change the
    /// state (SIMD searches), and feeds every other byte to `byte` and `eol` as `next_record` does.
    ///
    /// Quoted: only the quote and the escape change the state (line breaks are data, and the end
    /// of a line does nothing). Unquoted: only the quote, the escape and the line breaks matter to
    /// where a record ends, the quote only at a field's start, which is where the byte before it
    /// is an unquoted delimiter. So between two of those bytes, ordinary bytes and delimiters are
    /// skipped, and the state after them follows from the last one (`after_unquoted_run`).
    pub fn next_boundary(
        &mut self,
        data: &[u8],
        at: &mut usize,
        eof: bool,
    ) -> Option<(usize, usize)> {
        let d = self.d;
        let n = data.len();
        let mut i = *at;
        while i < n {
            match self.state {
                State::InQuotedField => {
                    let found = if d.escape < 256 {
                        memchr::memchr2(d.quote, d.escape as u8, &data[i..])
                    } else {
                        memchr::memchr(d.quote, &data[i..])
                    };
                    match found {
                        Some(j) => i += j,
                        None => {
                            i = n;
                            break;
                        }
                    }
                }
                State::InField
                | State::AfterEscapedCrnl
                | State::StartField
                | State::StartRecord => {
                    let from = i;
                    let found = if d.escape < 256 {
                        find4(&data[i..], d.quote, d.escape as u8, b'\r', b'\n')
                    } else {
                        memchr::memchr3(d.quote, b'\r', b'\n', &data[i..])
                    };
                    let stop = found.map_or(n, |j| i + j);
                    self.state = after_unquoted_run(self.state, &data[from..stop], d.delimiter);
                    i = stop;
                    if i == n {
                        break;
                    }
                }
                _ => {}
            }
            if data[i] == b'\r' && i + 1 == n && !eof {
                break; // is it \r\n? the next chunk tells
            }
            if let Some(record) = self.step(data, &mut i, &mut NoFields) {
                *at = i;
                return Some(record);
            }
        }
        *at = i;
        None
    }

    /// At the end of the input: ends the last line if it has no terminator. Returns whether the
    /// record is complete; if not, the csv module (strict=False) still returns it as a row, and
    /// it is unterminated when it ends inside a quoted field.
    pub fn end_of_input<F: Fields>(&mut self, line_pending: bool, f: &mut F) -> bool {
        if line_pending {
            self.eol(f);
        }
        if self.state == State::StartRecord {
            return true;
        }
        f.save();
        false
    }

    pub fn in_quotes(&self) -> bool {
        matches!(
            self.state,
            State::InQuotedField | State::EscapeInQuotedField
        )
    }
}

/// Parses one record's bytes (its terminator included, or none at the end of the input) into
/// `f`. Returns false when the record ends inside a quoted field (at the end of the input).
#[inline(always)]
pub fn parse_record<F: Fields>(d: Dialect, data: &[u8], f: &mut F) -> bool {
    let mut m = Machine::new(d);
    let mut at = 0;
    if m.next_record(data, &mut at, true, f).is_some() {
        return true;
    }
    let pending = !data.is_empty() && !matches!(data[data.len() - 1], b'\n' | b'\r');
    m.end_of_input(pending, f) || !m.in_quotes()
}

/// The state-transfer function of a byte range, for every start state: what state the machine is
/// in after `data[..len]`, having seen `data[len]` (if any) only to place the end of a `\r` line.
pub fn transfer(d: Dialect, data: &[u8], len: usize) -> [State; 9] {
    let mut out = STATES;
    // Machines that reach the same state at the same byte go on together: track distinct ones.
    let mut machines: Vec<(Machine, Vec<usize>)> = Vec::new();
    for (k, s) in STATES.iter().enumerate() {
        let mut m = Machine::new(d);
        m.state = *s;
        machines.push((m, vec![k]));
    }
    let mut i = 0;
    while i < len {
        let c = data[i];
        for (m, _) in machines.iter_mut() {
            m.byte(c, &mut NoFields);
        }
        let line_ends = c == b'\n' || (c == b'\r' && !(i + 1 < data.len() && data[i + 1] == b'\n'));
        if line_ends {
            for (m, _) in machines.iter_mut() {
                m.eol(&mut NoFields);
            }
        }
        if machines.len() > 1 && line_ends {
            merge(&mut machines);
        }
        i += 1;
    }
    for (m, starts) in machines {
        for k in starts {
            out[k] = m.state;
        }
    }
    out
}

fn merge(machines: &mut Vec<(Machine, Vec<usize>)>) {
    let mut merged: Vec<(Machine, Vec<usize>)> = Vec::with_capacity(machines.len());
    for (m, starts) in machines.drain(..) {
        if let Some(existing) = merged.iter_mut().find(|(e, _)| e.state == m.state) {
            existing.1.extend(starts);
        } else {
            merged.push((m, starts));
        }
    }
    *machines = merged;
}

/// The state after a run of bytes that are ordinary or the delimiter, none of them a quote, an
/// escape or a line break, read in an unquoted state `before`.
#[inline(always)]
fn after_unquoted_run(before: State, run: &[u8], delimiter: u8) -> State {
    match run.last() {
        None => before,
        Some(&last) if last == delimiter => State::StartField,
        // Ordinary bytes keep AfterEscapedCrnl until a delimiter leaves it.
        Some(_)
            if before == State::AfterEscapedCrnl && memchr::memchr(delimiter, run).is_none() =>
        {
            before
        }
        Some(_) => State::InField,
    }
}

/// The first of four bytes (escape dialects only: the others use memchr3).
#[inline]
fn find4(data: &[u8], a: u8, b: u8, c: u8, d: u8) -> Option<usize> {
    let first = memchr::memchr3(a, b, c, data);
    let limit = first.unwrap_or(data.len());
    match memchr::memchr(d, &data[..limit]) {
        Some(j) => Some(j),
        None => first,
    }
}
