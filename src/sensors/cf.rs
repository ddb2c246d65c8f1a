//! The few CoreFoundation calls that IOReport's dictionaries need, looked up at run time in the
//! library that also gives IOReport (`dlsym` searches a library's dependencies, and IOReport
//! links CoreFoundation), so nothing here is linked at build time and a stand-in library can
//! give both on Linux.
//!
//! Ownership follows CoreFoundation's rule: what a `Create` or `Copy` call returns is ours to
//! release ([`Owned`]); what a `Get` call returns is borrowed from its container.

use std::ffi::{CString, c_char, c_void};

use libloading::Library;

/// Any CoreFoundation object.
pub type CfRef = *const c_void;

type Release = unsafe extern "C" fn(CfRef);
type StringCreate = unsafe extern "C" fn(CfRef, *const c_char, u32) -> CfRef;
type StringGet = unsafe extern "C" fn(CfRef, *mut c_char, isize, u32) -> u8;
type DictGetValue = unsafe extern "C" fn(CfRef, CfRef) -> CfRef;
type DictGetCount = unsafe extern "C" fn(CfRef) -> isize;
type DictMutableCopy = unsafe extern "C" fn(CfRef, isize, CfRef) -> CfRef;
type ArrayGetCount = unsafe extern "C" fn(CfRef) -> isize;
type ArrayGetValue = unsafe extern "C" fn(CfRef, isize) -> CfRef;

/// `kCFStringEncodingUTF8`.
const UTF8: u32 = 0x0800_0100;

/// Longest channel name or unit label read, bytes: IOReport's are under 64.
const TEXT_BUFFER: usize = 256;

/// The entry points, copied out of a library the owner keeps loaded for as long as this lives.
#[derive(Clone, Copy)]
pub struct CoreFoundation {
    release: Release,
    string_create: StringCreate,
    string_get: StringGet,
    dict_get_value: DictGetValue,
    dict_get_count: DictGetCount,
    dict_mutable_copy: DictMutableCopy,
    array_get_count: ArrayGetCount,
    array_get_value: ArrayGetValue,
}

/// One symbol of `library`, or the loader's error naming it.
pub(crate) fn symbol<T: Copy>(library: &Library, name: &str) -> Result<T, String> {
    // SAFETY: each caller names the symbol with the C signature CoreFoundation and IOReport
    // declare for it (as macmon and zeus-apple-silicon declare them); the pointer is used only
    // while the library stays loaded, which the owner of the copied table guarantees.
    unsafe { library.get::<T>(name.as_bytes()) }
        .map(|found| *found)
        .map_err(|err| format!("{name}: {err}"))
}

impl CoreFoundation {
    /// The calls, from `library`.
    pub fn load(library: &Library) -> Result<Self, String> {
        Ok(Self {
            release: symbol(library, "CFRelease")?,
            string_create: symbol(library, "CFStringCreateWithCString")?,
            string_get: symbol(library, "CFStringGetCString")?,
            dict_get_value: symbol(library, "CFDictionaryGetValue")?,
            dict_get_count: symbol(library, "CFDictionaryGetCount")?,
            dict_mutable_copy: symbol(library, "CFDictionaryCreateMutableCopy")?,
            array_get_count: symbol(library, "CFArrayGetCount")?,
            array_get_value: symbol(library, "CFArrayGetValueAtIndex")?,
        })
    }

    /// Takes ownership of `object`, returned by a `Create` or `Copy` call (`None` for null).
    pub fn own(&self, object: CfRef) -> Option<Owned> {
        // `then`, not `then_some`: an `Owned` built for null would release null when dropped.
        (!object.is_null()).then(|| Owned {
            object,
            release: self.release,
        })
    }

    /// A new CFString holding `text`.
    pub fn string(&self, text: &str) -> Option<Owned> {
        let text = CString::new(text).ok()?;
        // SAFETY: a NUL-terminated string and the default allocator (null).
        self.own(unsafe { (self.string_create)(std::ptr::null(), text.as_ptr(), UTF8) })
    }

    /// The text of a CFString (`None` for null or text that does not fit the buffer).
    pub fn text(&self, string: CfRef) -> Option<String> {
        if string.is_null() {
            return None;
        }
        let mut buffer = [0 as c_char; TEXT_BUFFER];
        // SAFETY: `string` is a CFString the caller holds; the buffer's size is passed.
        let done = unsafe {
            (self.string_get)(string, buffer.as_mut_ptr(), TEXT_BUFFER.cast_signed(), UTF8)
        };
        if done == 0 {
            return None;
        }
        // SAFETY: CFStringGetCString NUL-terminates what it wrote within the buffer.
        let text = unsafe { std::ffi::CStr::from_ptr(buffer.as_ptr()) };
        Some(text.to_string_lossy().into_owned())
    }

    /// The value under the string key `key` of a CFDictionary, borrowed from it.
    pub fn value(&self, dict: CfRef, key: &str) -> Option<CfRef> {
        let key = self.string(key)?;
        // SAFETY: `dict` is a CFDictionary the caller holds; the key is a live CFString.
        let value = unsafe { (self.dict_get_value)(dict, key.get()) };
        (!value.is_null()).then_some(value)
    }

    /// A mutable copy of a CFDictionary (IOReport subscribes to a mutable one).
    pub fn mutable_copy(&self, dict: CfRef) -> Option<Owned> {
        // SAFETY: `dict` is a CFDictionary the caller holds.
        let count = unsafe { (self.dict_get_count)(dict) };
        // SAFETY: the default allocator, a capacity at least the count, a live dictionary.
        self.own(unsafe { (self.dict_mutable_copy)(std::ptr::null(), count, dict) })
    }

    /// The items of a CFArray, borrowed from it.
    pub fn items(&self, array: CfRef) -> Vec<CfRef> {
        // SAFETY: `array` is a CFArray the caller holds; indexes stay below its count.
        let count = unsafe { (self.array_get_count)(array) };
        (0..count.max(0))
            .map(|index| unsafe { (self.array_get_value)(array, index) })
            .collect()
    }
}

/// A CoreFoundation object this process owns, released when dropped; it must be dropped
/// before the library that gave `release` is unloaded (its owner declares it first).
pub struct Owned {
    object: CfRef,
    release: Release,
}

impl Owned {
    /// The object, borrowed.
    pub fn get(&self) -> CfRef {
        self.object
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: the object is non-null and was returned by a Create or Copy call, so this
        // process holds one reference to it, given back once here.
        unsafe { (self.release)(self.object) };
    }
}
