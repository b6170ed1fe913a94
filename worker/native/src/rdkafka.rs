//! The few librdkafka functions the hot path needs, bound at run time to the librdkafka that
//! confluent-kafka already loaded, so that both drive one client: no second copy of the library,
//! no headers needed to build.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

pub type Rk = c_void;
pub type Conf = c_void;
pub type RdError = c_void;

pub const ERR_NO_ERROR: c_int = 0;
pub const ERR_QUEUE_FULL: c_int = -184;
pub const ERR_FATAL: c_int = -150;
pub const ERR_STATE: c_int = -172;
pub const CONF_UNKNOWN: c_int = -2;
pub const CONF_OK: c_int = 0;
pub const CONF_INVALID: c_int = -1;

/// `rd_kafka_message_t`: stable across librdkafka 1.x and 2.x.
#[repr(C)]
pub struct Message {
    pub err: c_int,
    pub rkt: *mut c_void,
    pub partition: i32,
    pub payload: *mut c_void,
    pub len: usize,
    pub key: *mut c_void,
    pub key_len: usize,
    pub offset: i64,
    pub private: *mut c_void,
}

pub const VTYPE_TOPIC: c_int = 1;
pub const VTYPE_VALUE: c_int = 4;
pub const VTYPE_KEY: c_int = 5;
pub const VTYPE_MSGFLAGS: c_int = 7;
pub const VTYPE_TIMESTAMP: c_int = 8;
pub const VTYPE_HEADER: c_int = 9;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Mem {
    pub ptr: *const c_void,
    pub size: usize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Header {
    pub name: *const c_char,
    pub val: *const c_void,
    pub size: isize,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union VuValue {
    pub cstr: *const c_char,
    pub i: c_int,
    pub i64: i64,
    pub mem: Mem,
    pub header: Header,
    pad: [u8; 64],
}

/// `rd_kafka_vu_t`: a tag and a 64-byte union.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Vu {
    pub vtype: c_int,
    pub u: VuValue,
}

impl Vu {
    pub fn topic(name: &CStr) -> Vu {
        Vu {
            vtype: VTYPE_TOPIC,
            u: VuValue {
                cstr: name.as_ptr(),
            },
        }
    }
    pub fn value(bytes: &[u8]) -> Vu {
        Vu {
            vtype: VTYPE_VALUE,
            u: VuValue {
                mem: Mem {
                    ptr: bytes.as_ptr().cast(),
                    size: bytes.len(),
                },
            },
        }
    }
    pub fn key(bytes: &[u8]) -> Vu {
        Vu {
            vtype: VTYPE_KEY,
            u: VuValue {
                mem: Mem {
                    ptr: bytes.as_ptr().cast(),
                    size: bytes.len(),
                },
            },
        }
    }
    /// No copy and no free: librdkafka points at our buffer, which lives until the message is acked.
    /// The record's timestamp (CreateTime, ms since the epoch); saves librdkafka a clock read.
    pub fn timestamp(ms: i64) -> Vu {
        Vu {
            vtype: VTYPE_TIMESTAMP,
            u: VuValue { i64: ms },
        }
    }
    pub fn no_copy() -> Vu {
        Vu {
            vtype: VTYPE_MSGFLAGS,
            u: VuValue { i: 0 },
        }
    }
    pub fn header(name: &'static CStr, value: &[u8]) -> Vu {
        Vu {
            vtype: VTYPE_HEADER,
            u: VuValue {
                header: Header {
                    name: name.as_ptr(),
                    val: value.as_ptr().cast(),
                    size: value.len() as isize,
                },
            },
        }
    }
}

pub type OnNew =
    unsafe extern "C" fn(*mut Rk, *const Conf, *mut c_void, *mut c_char, usize) -> c_int;
pub type OnConfSet = unsafe extern "C" fn(
    *mut Conf,
    *const c_char,
    *const c_char,
    *mut c_char,
    usize,
    *mut c_void,
) -> c_int;
pub type OnConfDestroy = unsafe extern "C" fn(*mut c_void) -> c_int;
pub type OnAck = unsafe extern "C" fn(*mut Rk, *mut Message, *mut c_void) -> c_int;
pub type OnDestroy = unsafe extern "C" fn(*mut Rk, *mut c_void) -> c_int;

pub struct Api {
    pub version: c_int,
    pub conf_add_on_new:
        unsafe extern "C" fn(*mut Conf, *const c_char, OnNew, *mut c_void) -> c_int,
    pub conf_add_on_conf_set:
        unsafe extern "C" fn(*mut Conf, *const c_char, OnConfSet, *mut c_void) -> c_int,
    pub conf_add_on_conf_destroy:
        unsafe extern "C" fn(*mut Conf, *const c_char, OnConfDestroy, *mut c_void) -> c_int,
    pub add_on_acknowledgement:
        unsafe extern "C" fn(*mut Rk, *const c_char, OnAck, *mut c_void) -> c_int,
    pub add_on_destroy:
        unsafe extern "C" fn(*mut Rk, *const c_char, OnDestroy, *mut c_void) -> c_int,
    pub produceva: unsafe extern "C" fn(*mut Rk, *const Vu, usize) -> *mut RdError,
    pub error_code: unsafe extern "C" fn(*const RdError) -> c_int,
    pub error_destroy: unsafe extern "C" fn(*mut RdError),
}

/// librdkafka's builtin features ("gzip, snappy, ssl, ..., plugins, ...") of a library.
unsafe fn builtin_features(handle: *mut c_void) -> Result<String, String> {
    let conf_new: unsafe extern "C" fn() -> *mut Conf = sym(handle, "rd_kafka_conf_new")?;
    let conf_get: unsafe extern "C" fn(
        *const Conf,
        *const c_char,
        *mut c_char,
        *mut usize,
    ) -> c_int = sym(handle, "rd_kafka_conf_get")?;
    let conf_destroy: unsafe extern "C" fn(*mut Conf) = sym(handle, "rd_kafka_conf_destroy")?;
    let conf = conf_new();
    let mut buf = vec![0u8; 1024];
    let mut size = buf.len();
    let result = conf_get(
        conf,
        c"builtin.features".as_ptr(),
        buf.as_mut_ptr().cast(),
        &mut size,
    );
    conf_destroy(conf);
    if result != CONF_OK {
        return Err("librdkafka does not say its builtin.features".into());
    }
    Ok(CStr::from_bytes_until_nul(&buf)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default())
}

unsafe fn sym<T: Copy>(handle: *mut c_void, name: &str) -> Result<T, String> {
    let cname = CString::new(name).unwrap();
    let found = libc::dlsym(handle, cname.as_ptr());
    if found.is_null() {
        return Err(format!("librdkafka has no {name}"));
    }
    Ok(std::mem::transmute_copy(&found))
}

// The function pointers are plain code addresses in a library that stays loaded.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

static API: OnceLock<Result<Api, String>> = OnceLock::new();

/// librdkafka as loaded by confluent-kafka, or why it cannot be used.
pub fn api() -> Result<&'static Api, String> {
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// The oldest librdkafka with everything used here (produceva, the interceptor chain).
const MIN_VERSION: c_int = 0x0206_0000;

fn load() -> Result<Api, String> {
    let path = loaded_librdkafka()
        .ok_or("librdkafka is not loaded in this process (import confluent_kafka first)")?;
    let cpath = CString::new(path.clone()).map_err(|e| e.to_string())?;
    // RTLD_NOLOAD: only a reference to the copy already in memory, never a second one.
    let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    if handle.is_null() {
        return Err(format!("{path} cannot be opened again"));
    }
    unsafe {
        if !builtin_features(handle)?
            .split(',')
            .any(|f| f.trim() == "plugins")
        {
            return Err("this librdkafka was built without plugin support".into());
        }
        let version: unsafe extern "C" fn() -> c_int = sym(handle, "rd_kafka_version")?;
        let version = version();
        if version < MIN_VERSION {
            return Err(format!("librdkafka {version:#x} is older than 2.6"));
        }
        Ok(Api {
            version,
            conf_add_on_new: sym(handle, "rd_kafka_conf_interceptor_add_on_new")?,
            conf_add_on_conf_set: sym(handle, "rd_kafka_conf_interceptor_add_on_conf_set")?,
            conf_add_on_conf_destroy: sym(handle, "rd_kafka_conf_interceptor_add_on_conf_destroy")?,
            add_on_acknowledgement: sym(handle, "rd_kafka_interceptor_add_on_acknowledgement")?,
            add_on_destroy: sym(handle, "rd_kafka_interceptor_add_on_destroy")?,
            produceva: sym(handle, "rd_kafka_produceva")?,
            error_code: sym(handle, "rd_kafka_error_code")?,
            error_destroy: sym(handle, "rd_kafka_error_destroy")?,
        })
    }
}

/// The path of the librdkafka shared object mapped into this process, if any.
fn loaded_librdkafka() -> Option<String> {
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        let name = (*info).dlpi_name;
        if name.is_null() {
            return 0;
        }
        let name = CStr::from_ptr(name).to_string_lossy();
        let file = name.rsplit('/').next().unwrap_or("");
        if file.starts_with("librdkafka") && file.contains(".so") {
            *(data as *mut Option<String>) = Some(name.into_owned());
            return 1;
        }
        0
    }
    let mut found: Option<String> = None;
    unsafe { libc::dl_iterate_phdr(Some(visit), (&mut found as *mut Option<String>).cast()) };
    found
}
