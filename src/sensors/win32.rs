//! The few Win32 calls that find and ask Windows' energy meters, looked up at run time:
//! `SetupDi*` (setupapi.dll) list the `GUID_DEVICE_ENERGY_METER` interfaces, `CreateFileW`
//! opens one for reading, `DeviceIoControl` asks it ([`super::emi`] reads the replies) and
//! `CloseHandle` closes it (kernel32.dll). Loading them at run time keeps this file built and
//! tested on Linux, where a stand-in library (`tests/fixtures/fake_emi.c`) gives all of them.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libloading::Library;

use super::cf::symbol;
use super::emi::EmiDevice;

/// The system libraries, in the order a symbol is looked for.
pub const WINDOWS_LIBRARIES: [&str; 2] = ["setupapi.dll", "kernel32.dll"];

/// `GUID_DEVICE_ENERGY_METER`, {45BD8344-7ED6-49CF-A440-C276C933B053}.
#[repr(C)]
#[derive(Clone, Copy)]
struct Guid {
    data1: u32,
    data2: u16,
    data3: u16,
    data4: [u8; 8],
}

static GUID_DEVICE_ENERGY_METER: Guid = Guid {
    data1: 0x45BD_8344,
    data2: 0x7ED6,
    data3: 0x49CF,
    data4: [0xA4, 0x40, 0xC2, 0x76, 0xC9, 0x33, 0xB0, 0x53],
};

/// `SP_DEVICE_INTERFACE_DATA`.
#[repr(C)]
struct InterfaceData {
    size: u32,
    class: Guid,
    flags: u32,
    reserved: usize,
}

const DIGCF_PRESENT: u32 = 0x2;
const DIGCF_DEVICEINTERFACE: u32 = 0x10;
const GENERIC_READ: u32 = 0x8000_0000;
const FILE_SHARE_READ_WRITE: u32 = 0x1 | 0x2;
const OPEN_EXISTING: u32 = 3;
const FILE_ATTRIBUTE_NORMAL: u32 = 0x80;
/// `INVALID_HANDLE_VALUE`.
const INVALID: isize = -1;
/// `cbSize` of `SP_DEVICE_INTERFACE_DETAIL_DATA_W`: its `DWORD` and one `WCHAR`, padded to
/// the pointer's alignment (8 on 64-bit Windows, 6 on 32-bit).
const DETAIL_HEADER: u32 = if cfg!(target_pointer_width = "64") {
    8
} else {
    6
};
/// The most interfaces listed.
const MAX_METERS: u32 = 64;

type GetClassDevs = unsafe extern "system" fn(*const Guid, *const u16, isize, u32) -> isize;
type EnumInterfaces =
    unsafe extern "system" fn(isize, *mut c_void, *const Guid, u32, *mut InterfaceData) -> i32;
type GetDetail = unsafe extern "system" fn(
    isize,
    *mut InterfaceData,
    *mut c_void,
    u32,
    *mut u32,
    *mut c_void,
) -> i32;
type DestroyList = unsafe extern "system" fn(isize) -> i32;
type CreateFile =
    unsafe extern "system" fn(*const u16, u32, u32, *mut c_void, u32, u32, isize) -> isize;
type IoControl = unsafe extern "system" fn(
    isize,
    u32,
    *mut c_void,
    u32,
    *mut c_void,
    u32,
    *mut u32,
    *mut c_void,
) -> i32;
type CloseHandle = unsafe extern "system" fn(isize) -> i32;

/// The entry points, and the libraries that keep them loaded.
struct Api {
    get_class_devs: GetClassDevs,
    enum_interfaces: EnumInterfaces,
    get_detail: GetDetail,
    destroy_list: DestroyList,
    create_file: CreateFile,
    io_control: IoControl,
    close_handle: CloseHandle,
    _libraries: Vec<Library>,
}

/// The libraries to load: the one named (a stand-in giving every call), else on Windows the
/// system's; none elsewhere.
pub fn libraries(named: Option<&Path>) -> Vec<PathBuf> {
    match named {
        Some(path) => vec![path.to_path_buf()],
        None if cfg!(windows) => WINDOWS_LIBRARIES.iter().map(PathBuf::from).collect(),
        None => Vec::new(),
    }
}

/// `name` from the first of `libraries` that has it.
fn find<T: Copy>(libraries: &[Library], name: &str) -> Result<T, String> {
    let mut last = format!("{name}: no library loaded");
    for library in libraries {
        match symbol(library, name) {
            Ok(found) => return Ok(found),
            Err(err) => last = err,
        }
    }
    Err(last)
}

impl Api {
    fn load(paths: &[PathBuf]) -> Result<Self, String> {
        let mut libraries = Vec::new();
        for path in paths {
            // SAFETY: the system's setupapi and kernel32, or a library the trusted setting
            // names; loading runs their initialisers.
            let library = unsafe { Library::new(path) }
                .map_err(|err| format!("{}: {err}", path.display()))?;
            libraries.push(library);
        }
        Ok(Self {
            get_class_devs: find(&libraries, "SetupDiGetClassDevsW")?,
            enum_interfaces: find(&libraries, "SetupDiEnumDeviceInterfaces")?,
            get_detail: find(&libraries, "SetupDiGetDeviceInterfaceDetailW")?,
            destroy_list: find(&libraries, "SetupDiDestroyDeviceInfoList")?,
            create_file: find(&libraries, "CreateFileW")?,
            io_control: find(&libraries, "DeviceIoControl")?,
            close_handle: find(&libraries, "CloseHandle")?,
            _libraries: libraries,
        })
    }

    /// The device path of every energy meter interface present, as NUL-terminated UTF-16.
    fn meter_paths(&self) -> Result<Vec<Vec<u16>>, String> {
        // SAFETY: a GUID that lives through the call, no enumerator, no window.
        let list = unsafe {
            (self.get_class_devs)(
                &raw const GUID_DEVICE_ENERGY_METER,
                std::ptr::null(),
                0,
                DIGCF_PRESENT | DIGCF_DEVICEINTERFACE,
            )
        };
        if list == INVALID {
            return Err("SetupDiGetClassDevsW failed".to_owned());
        }
        let mut paths = Vec::new();
        for index in 0..MAX_METERS {
            let mut interface = InterfaceData {
                size: size_of::<InterfaceData>() as u32,
                class: GUID_DEVICE_ENERGY_METER,
                flags: 0,
                reserved: 0,
            };
            // SAFETY: the live list, the GUID, and a struct whose size field says its size.
            let found = unsafe {
                (self.enum_interfaces)(
                    list,
                    std::ptr::null_mut(),
                    &raw const GUID_DEVICE_ENERGY_METER,
                    index,
                    &raw mut interface,
                )
            };
            if found == 0 {
                break;
            }
            if let Some(path) = self.detail(list, &mut interface) {
                paths.push(path);
            }
        }
        // SAFETY: the list made above, destroyed once.
        unsafe { (self.destroy_list)(list) };
        Ok(paths)
    }

    /// The device path of one interface: asked for its size first, then read.
    fn detail(&self, list: isize, interface: &mut InterfaceData) -> Option<Vec<u16>> {
        let mut required = 0u32;
        // SAFETY: no buffer (null, size 0): the call only says the size it needs.
        unsafe {
            (self.get_detail)(
                list,
                interface,
                std::ptr::null_mut(),
                0,
                &raw mut required,
                std::ptr::null_mut(),
            )
        };
        if required <= DETAIL_HEADER || required > 64 * 1024 {
            return None;
        }
        // u32 words: aligned for the struct's DWORD, and as long as `required` bytes or more.
        let mut buffer = vec![0u32; (required as usize).div_ceil(4)];
        buffer[0] = DETAIL_HEADER;
        // SAFETY: a buffer of at least `required` bytes whose cbSize is the struct's.
        let done = unsafe {
            (self.get_detail)(
                list,
                interface,
                buffer.as_mut_ptr().cast(),
                required,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if done == 0 {
            return None;
        }
        // DevicePath starts right after the DWORD cbSize.
        let units: Vec<u16> = buffer
            .iter()
            .flat_map(|word| word.to_le_bytes())
            .collect::<Vec<u8>>()
            .chunks_exact(2)
            .skip(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .take_while(|unit| *unit != 0)
            .chain([0])
            .collect();
        (units.len() > 1).then_some(units)
    }
}

/// One open energy meter interface.
struct Meter {
    api: Arc<Api>,
    handle: isize,
}

impl EmiDevice for Meter {
    fn control(&mut self, code: u32, reply_bytes: usize) -> Result<Vec<u8>, String> {
        let mut reply = vec![0u8; reply_bytes];
        let mut returned = 0u32;
        // SAFETY: an open handle, no input, an output buffer of the size given, no overlap.
        let done = unsafe {
            (self.api.io_control)(
                self.handle,
                code,
                std::ptr::null_mut(),
                0,
                reply.as_mut_ptr().cast(),
                reply_bytes as u32,
                &raw mut returned,
                std::ptr::null_mut(),
            )
        };
        if done == 0 {
            return Err(format!("DeviceIoControl {code:#x} failed"));
        }
        reply.truncate(returned as usize);
        Ok(reply)
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        // SAFETY: the handle CreateFileW opened, closed once.
        unsafe { (self.api.close_handle)(self.handle) };
    }
}

/// Every energy meter interface, opened for reading; says why none in one line.
pub fn open_meters(libraries: &[PathBuf]) -> Result<Vec<Box<dyn EmiDevice>>, String> {
    let api = Arc::new(Api::load(libraries).map_err(|why| format!("EMI unavailable: {why}"))?);
    let mut meters: Vec<Box<dyn EmiDevice>> = Vec::new();
    for path in api.meter_paths()? {
        // SAFETY: a NUL-terminated UTF-16 path; read access, shared, no security attributes,
        // an existing device, no template.
        let handle = unsafe {
            (api.create_file)(
                path.as_ptr(),
                GENERIC_READ,
                FILE_SHARE_READ_WRITE,
                std::ptr::null_mut(),
                OPEN_EXISTING,
                FILE_ATTRIBUTE_NORMAL,
                0,
            )
        };
        if handle != INVALID && handle != 0 {
            meters.push(Box::new(Meter {
                api: Arc::clone(&api),
                handle,
            }));
        }
    }
    if meters.is_empty() {
        return Err("no Energy Meter Interface device can be opened".to_owned());
    }
    Ok(meters)
}
