//! Acknowledgements counted per block, inside librdkafka's broker threads.
//!
//! This library is also a librdkafka plugin: confluent-kafka's Producer is configured with
//! `plugin.library.paths` = this file, so librdkafka calls `conf_init` below, which adds
//! interceptors to that producer. `on_new` captures its `rd_kafka_t`, and `on_acknowledgement`
//! sees every message's final outcome. Our messages are produced without a copy, so a message's
//! payload address tells which block it belongs to; the block's buffers stay alive until its
//! last message is acknowledged (delivered, failed or purged by an aborted transaction).
//! Messages that Python produced (the positions record) fall in no block and are ignored.
//! A block also keeps, per partition, the first and last offset Kafka acknowledged for its rows
//! (its dead letters, told apart by their payload addresses, excluded).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicI64, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::rdkafka::{api, Conf, Message, Rk, CONF_INVALID, CONF_OK, CONF_UNKNOWN};

/// The producer property that tells Python which producer a tracker belongs to.
pub const TOKEN_PROPERTY: &str = "csvkafka.native.token";
const NAME: &CStr = c"csvkafka";
/// Error codes kept per block (the count of failures is always exact).
const KEPT_ERRORS: usize = 8;

/// Anything a block's messages point into.
pub type Keep = Box<dyn std::any::Any + Send + Sync>;

/// One block's messages in flight.
pub struct Flight {
    outstanding: AtomicI64,
    failed: AtomicU64,
    errors: Mutex<Vec<c_int>>,
    ranges: Vec<(usize, usize)>,
    /// Payload addresses of the dead letters, sorted.
    dead_letters: Vec<usize>,
    /// (partition, first offset, last offset) of the rows acknowledged.
    offsets: Mutex<Vec<(i32, i64, i64)>>,
    keep: Mutex<Option<Keep>>,
}

impl Flight {
    pub fn outstanding(&self) -> i64 {
        self.outstanding.load(Ordering::Acquire)
    }
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Acquire)
    }
    pub fn errors(&self) -> Vec<c_int> {
        self.errors.lock().unwrap().clone()
    }
    /// Per partition, the first and last offset acknowledged for the block's rows so far.
    pub fn offsets(&self) -> Vec<(i32, i64, i64)> {
        self.offsets.lock().unwrap().clone()
    }

    fn delivered(&self, payload: usize, partition: i32, offset: i64) {
        if offset < 0 || self.dead_letters.binary_search(&payload).is_ok() {
            return;
        }
        let mut offsets = self.offsets.lock().unwrap();
        match offsets.iter_mut().find(|(p, _, _)| *p == partition) {
            Some((_, first, last)) => {
                *first = (*first).min(offset);
                *last = (*last).max(offset);
            }
            None => offsets.push((partition, offset, offset)),
        }
    }
}

pub struct Tracker {
    token: AtomicU64,
    rk: AtomicPtr<Rk>,
    registry: Mutex<BTreeMap<usize, Arc<Flight>>>,
}

impl Tracker {
    fn new() -> Self {
        Tracker {
            token: AtomicU64::new(0),
            rk: AtomicPtr::new(std::ptr::null_mut()),
            registry: Mutex::new(BTreeMap::new()),
        }
    }

    /// The producer's handle; null once it is being destroyed.
    pub fn rk(&self) -> *mut Rk {
        self.rk.load(Ordering::Acquire)
    }

    /// Registers a block of `count` messages whose payloads lie in `ranges`, the dead letters'
    /// starting at `dead_letters`; `keep` lives until the last of them is settled.
    pub fn open(
        &self,
        count: usize,
        ranges: Vec<(usize, usize)>,
        mut dead_letters: Vec<usize>,
        keep: Keep,
    ) -> Arc<Flight> {
        dead_letters.sort_unstable();
        let flight = Arc::new(Flight {
            outstanding: AtomicI64::new(count as i64),
            failed: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
            ranges: ranges
                .into_iter()
                .filter(|(start, end)| end > start)
                .collect(),
            dead_letters,
            offsets: Mutex::new(Vec::new()),
            keep: Mutex::new(Some(keep)),
        });
        if count > 0 {
            let mut registry = self.registry.lock().unwrap();
            for &(start, _) in &flight.ranges {
                registry.insert(start, flight.clone());
            }
        } else {
            flight.keep.lock().unwrap().take();
        }
        flight
    }

    /// `count` messages of `flight` are done; `error` non-zero when they failed.
    pub fn settle(&self, flight: &Flight, count: i64, error: c_int) {
        if error != 0 {
            flight.failed.fetch_add(count as u64, Ordering::AcqRel);
            let mut errors = flight.errors.lock().unwrap();
            if errors.len() < KEPT_ERRORS {
                errors.push(error);
            }
        }
        if flight.outstanding.fetch_sub(count, Ordering::AcqRel) == count {
            let mut registry = self.registry.lock().unwrap();
            for (start, _) in &flight.ranges {
                if registry
                    .get(start)
                    .is_some_and(|f| std::ptr::eq(Arc::as_ptr(f), flight))
                {
                    registry.remove(start);
                }
            }
            drop(registry);
            flight.keep.lock().unwrap().take();
        }
    }

    fn acknowledge(&self, message: &Message) {
        let (payload, len, error) = (message.payload as usize, message.len, message.err);
        if payload == 0 || len == 0 {
            return;
        }
        let flight = {
            let registry = self.registry.lock().unwrap();
            match registry.range(..=payload).next_back() {
                Some((_, flight))
                    if flight
                        .ranges
                        .iter()
                        .any(|&(s, e)| s <= payload && payload < e) =>
                {
                    flight.clone()
                }
                _ => return,
            }
        };
        if error == 0 {
            flight.delivered(payload, message.partition, message.offset);
        }
        self.settle(&flight, 1, error);
    }
}

fn trackers() -> &'static Mutex<HashMap<u64, Arc<Tracker>>> {
    static TRACKERS: OnceLock<Mutex<HashMap<u64, Arc<Tracker>>>> = OnceLock::new();
    TRACKERS.get_or_init(|| Mutex::new(HashMap::new()))
}

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// A token to put in a producer's configuration under TOKEN_PROPERTY.
pub fn new_token() -> u64 {
    NEXT_TOKEN.fetch_add(1, Ordering::Relaxed)
}

/// The tracker of the producer created with `token` (once).
pub fn attach(token: u64) -> Option<Arc<Tracker>> {
    trackers().lock().unwrap().remove(&token)
}

fn write_error(errstr: *mut c_char, size: usize, text: &str) {
    if errstr.is_null() || size == 0 {
        return;
    }
    let bytes = text.as_bytes();
    let n = bytes.len().min(size - 1);
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), errstr.cast::<u8>(), n);
        *errstr.add(n) = 0;
    }
}

/// librdkafka's plugin entry point.
///
/// # Safety
/// Called by librdkafka with a valid configuration object.
#[no_mangle]
pub unsafe extern "C" fn conf_init(
    conf: *mut Conf,
    _plug_opaquep: *mut *mut c_void,
    errstr: *mut c_char,
    errstr_size: usize,
) -> c_int {
    let api = match api() {
        Ok(api) => api,
        Err(why) => {
            write_error(errstr, errstr_size, &why);
            return -196; // RD_KAFKA_RESP_ERR__FAIL
        }
    };
    let opaque = Arc::into_raw(Arc::new(Tracker::new())) as *mut c_void;
    let results = [
        (api.conf_add_on_conf_set)(conf, NAME.as_ptr(), on_conf_set, opaque),
        (api.conf_add_on_new)(conf, NAME.as_ptr(), on_new, opaque),
        (api.conf_add_on_conf_destroy)(conf, NAME.as_ptr(), on_conf_destroy, opaque),
    ];
    if let Some(&err) = results.iter().find(|&&r| r != 0) {
        write_error(errstr, errstr_size, "csvkafka: adding interceptors failed");
        return err;
    }
    0
}

unsafe extern "C" fn on_conf_set(
    _conf: *mut Conf,
    name: *const c_char,
    value: *const c_char,
    errstr: *mut c_char,
    errstr_size: usize,
    opaque: *mut c_void,
) -> c_int {
    if name.is_null() || CStr::from_ptr(name).to_bytes() != TOKEN_PROPERTY.as_bytes() {
        return CONF_UNKNOWN;
    }
    let tracker = &*(opaque as *const Tracker);
    if value.is_null() {
        tracker.token.store(0, Ordering::Release);
        return CONF_OK;
    }
    match CStr::from_ptr(value)
        .to_str()
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(token) => {
            tracker.token.store(token, Ordering::Release);
            CONF_OK
        }
        None => {
            write_error(
                errstr,
                errstr_size,
                "csvkafka.native.token must be a number",
            );
            CONF_INVALID
        }
    }
}

unsafe extern "C" fn on_new(
    rk: *mut Rk,
    _conf: *const Conf,
    opaque: *mut c_void,
    _e: *mut c_char,
    _n: usize,
) -> c_int {
    let Ok(api) = api() else { return -196 };
    let tracker_ptr = opaque as *const Tracker;
    let tracker = &*tracker_ptr;
    tracker.rk.store(rk, Ordering::Release);
    let err = (api.add_on_acknowledgement)(rk, NAME.as_ptr(), on_acknowledgement, opaque);
    if err != 0 {
        return err;
    }
    let err = (api.add_on_destroy)(rk, NAME.as_ptr(), on_destroy, opaque);
    if err != 0 {
        return err;
    }
    Arc::increment_strong_count(tracker_ptr);
    let shared = Arc::from_raw(tracker_ptr);
    trackers()
        .lock()
        .unwrap()
        .insert(tracker.token.load(Ordering::Acquire), shared);
    0
}

unsafe extern "C" fn on_acknowledgement(
    _rk: *mut Rk,
    message: *mut Message,
    opaque: *mut c_void,
) -> c_int {
    let tracker = &*(opaque as *const Tracker);
    tracker.acknowledge(&*message);
    0
}

unsafe extern "C" fn on_destroy(_rk: *mut Rk, opaque: *mut c_void) -> c_int {
    let tracker = &*(opaque as *const Tracker);
    tracker.rk.store(std::ptr::null_mut(), Ordering::Release);
    let token = tracker.token.load(Ordering::Acquire);
    let mut all = trackers().lock().unwrap();
    if all
        .get(&token)
        .is_some_and(|t| std::ptr::eq(Arc::as_ptr(t), tracker))
    {
        all.remove(&token);
    }
    0
}

unsafe extern "C" fn on_conf_destroy(opaque: *mut c_void) -> c_int {
    drop(Arc::from_raw(opaque as *const Tracker));
    0
}
