//! AMD GPUs through amd-smi (`libamd_smi.so`), loaded at run time from a path that is a seam.
//!
//! A few entry points of the library's C API, declared here as `amdsmi.h` declares them and
//! looked up with `dlopen`: nothing is needed at build time and nothing when the library is
//! absent. The crates on crates.io (`amdsmi` / `amdsmi-sys` 0.1.0) generate their bindings
//! with bindgen from the ROCm headers at build time and pin one layout of the structs, which
//! changed between amd-smi 24.x and 25.x (`amdsmi_power_info_t` gained a leading
//! `socket_power`); reading only plain scalars, and the power struct by the library's own
//! version, works with both.
//!
//! Each processor handle amd-smi enumerates is one device: an MI250's two GCDs are two. Energy
//! is the accumulated energy counter (`amdsmi_get_energy_count`: counts times their resolution
//! in µJ); a counter that does not move while the device is checked at discovery (amdsmi
//! issues #22 / #38), or that stops moving while the device draws power, gives way to the
//! polled power (`amdsmi_get_power_info`), as Zeus validates its AMD counters. A device with
//! neither (the second GCD of an MI250, which reports its package's power on the first) is
//! left to the accounting to name `unmeasured`.

use std::collections::HashSet;
use std::ffi::{CStr, c_char, c_void};
use std::path::Path;
use std::time::{Duration, Instant};

use libloading::Library;

use super::device::{DeviceRead, Discovery, GpuBackend, GpuDevice, GpuFault, GpuInfo, Wanted};
use super::select::{self, Naming};
use super::{GpuConfig, Vendor};

/// The library loaded when no path is given, then ROCm's default install folder.
pub const DEFAULT_AMDSMI_LIBRARY: &str = "libamd_smi.so";
const ROCM_AMDSMI_LIBRARY: &str = "/opt/rocm/lib/libamd_smi.so";

/// How long discovery watches the energy counters to see that they move: amd-smi refreshes
/// them every millisecond or so, and a GPU at idle draws tens of watts.
pub const COUNTER_CHECK_S: f64 = 0.2;

/// A counter unchanged this long, in seconds, while the device draws power, is frozen.
pub const FROZEN_AFTER_S: f64 = 2.0;

/// The name faults and warnings give the library.
const LIBRARY: &str = "amd-smi";

// amdsmi_status_t values (amdsmi.h).
const STATUS_SUCCESS: u32 = 0;
const STATUS_NOT_SUPPORTED: u32 = 2;
const STATUS_NOT_YET_IMPLEMENTED: u32 = 3;
const STATUS_NOT_FOUND: u32 = 31;
const STATUS_DRIVER_NOT_LOADED: u32 = 34;
const STATUS_AMDGPU_RESTART_ERR: u32 = 54;
/// `AMDSMI_INIT_AMD_GPUS`.
const INIT_AMD_GPUS: u64 = 1 << 1;
/// `AMDSMI_GPU_UUID_SIZE` is 38; room to spare.
const UUID_BUFFER: usize = 64;
/// Bytes given to a struct the library fills: more than any version's `amdsmi_asic_info_t`
/// (under 1 kB) or `amdsmi_power_info_t` (192 B), so a newer, larger layout never writes past.
const STRUCT_BUFFER_WORDS: usize = 512;

type Handle = *mut c_void;
type Init = unsafe extern "C" fn(u64) -> u32;
type ShutDown = unsafe extern "C" fn() -> u32;
type GetSocketHandles = unsafe extern "C" fn(*mut u32, *mut Handle) -> u32;
type GetProcessorHandles = unsafe extern "C" fn(Handle, *mut u32, *mut Handle) -> u32;
type GetEnergyCount = unsafe extern "C" fn(Handle, *mut u64, *mut f32, *mut u64) -> u32;
type GetStruct = unsafe extern "C" fn(Handle, *mut c_void) -> u32;
type GetUuid = unsafe extern "C" fn(Handle, *mut u32, *mut c_char) -> u32;
type GetBdf = unsafe extern "C" fn(Handle, *mut u64) -> u32;
type GetLibVersion = unsafe extern "C" fn(*mut c_void) -> u32;

/// The entry points used, copied out of the loaded library (which `_library` keeps loaded).
struct Api {
    shut_down: ShutDown,
    get_energy_count: GetEnergyCount,
    get_power_info: GetStruct,
    get_gpu_activity: Option<GetStruct>,
    get_gpu_device_uuid: GetUuid,
    get_gpu_asic_info: Option<GetStruct>,
    get_gpu_device_bdf: Option<GetBdf>,
    /// amd-smi 25.x and later lay `amdsmi_power_info_t` out with a `uint64_t socket_power`
    /// first.
    power_info_v25: bool,
    _library: Library,
}

/// A zeroed, 8-byte aligned buffer for a struct the library fills.
struct StructBuffer([u64; STRUCT_BUFFER_WORDS]);

impl StructBuffer {
    fn new() -> Box<Self> {
        Box::new(Self([0; STRUCT_BUFFER_WORDS]))
    }

    fn as_mut_ptr(&mut self) -> *mut c_void {
        self.0.as_mut_ptr().cast()
    }

    fn u32_at(&self, offset: usize) -> u32 {
        let word = self.0[offset / 8];
        let bytes = word.to_ne_bytes();
        let start = offset % 8;
        let mut four = [0; 4];
        four.copy_from_slice(&bytes[start..start + 4]);
        u32::from_ne_bytes(four)
    }

    /// A NUL-terminated string of at most `capacity` bytes at offset 0.
    fn text(&self, capacity: usize) -> String {
        let bytes: Vec<u8> = self
            .0
            .iter()
            .flat_map(|word| word.to_ne_bytes())
            .take(capacity)
            .take_while(|byte| *byte != 0)
            .collect();
        String::from_utf8_lossy(&bytes).trim().to_owned()
    }
}

fn fault(status: u32) -> GpuFault {
    match status {
        STATUS_NOT_SUPPORTED | STATUS_NOT_YET_IMPLEMENTED => GpuFault::NotSupported,
        STATUS_NOT_FOUND | STATUS_DRIVER_NOT_LOADED | STATUS_AMDGPU_RESTART_ERR => {
            GpuFault::Lost { library: LIBRARY }
        }
        other => GpuFault::Other(format!("{LIBRARY} status {other}")),
    }
}

fn check(status: u32) -> Result<(), GpuFault> {
    if status == STATUS_SUCCESS {
        Ok(())
    } else {
        Err(fault(status))
    }
}

impl Api {
    /// Loads the library and its entry points; the optional ones may be missing.
    fn load(path: &Path) -> Result<(Self, Init, GetSocketHandles, GetProcessorHandles), String> {
        if let Some(error) = super::unopened(path.as_os_str()) {
            return Err(error);
        }
        // SAFETY: loading runs the library's initialisers; amd-smi's only set up its state.
        let library = unsafe { Library::new(path) }.map_err(|err| {
            let error = err.to_string();
            super::remember_unopened(path.as_os_str(), &error);
            error
        })?;
        // SAFETY: each symbol is declared with the signature amdsmi.h gives it.
        unsafe {
            fn required<T: Copy>(library: &Library, name: &[u8]) -> Result<T, String> {
                // SAFETY: the caller names a symbol whose C type is T.
                unsafe { library.get::<T>(name) }
                    .map(|symbol| *symbol)
                    .map_err(|err| err.to_string())
            }
            fn optional<T: Copy>(library: &Library, name: &[u8]) -> Option<T> {
                // SAFETY: as for `required`.
                unsafe { library.get::<T>(name) }.ok().map(|symbol| *symbol)
            }
            let init: Init = required(&library, b"amdsmi_init\0")?;
            let sockets: GetSocketHandles = required(&library, b"amdsmi_get_socket_handles\0")?;
            let processors: GetProcessorHandles =
                required(&library, b"amdsmi_get_processor_handles\0")?;
            let get_lib_version: Option<GetLibVersion> =
                optional(&library, b"amdsmi_get_lib_version\0");
            let power_info_v25 = get_lib_version.is_some_and(|get| {
                // Before 25.x the version struct began with the year (23, 24), since then
                // with the major version (25, 26): the first word tells the layouts apart.
                let mut buffer = StructBuffer::new();
                get(buffer.as_mut_ptr()) == STATUS_SUCCESS && buffer.u32_at(0) >= 25
            });
            let api = Self {
                shut_down: required(&library, b"amdsmi_shut_down\0")?,
                get_energy_count: required(&library, b"amdsmi_get_energy_count\0")?,
                get_power_info: required(&library, b"amdsmi_get_power_info\0")?,
                get_gpu_activity: optional(&library, b"amdsmi_get_gpu_activity\0"),
                get_gpu_device_uuid: required(&library, b"amdsmi_get_gpu_device_uuid\0")?,
                get_gpu_asic_info: optional(&library, b"amdsmi_get_gpu_asic_info\0"),
                get_gpu_device_bdf: optional(&library, b"amdsmi_get_gpu_device_bdf\0"),
                power_info_v25,
                _library: library,
            };
            Ok((api, init, sockets, processors))
        }
    }

    /// The energy counter in µJ: its count times its resolution.
    fn energy_uj(&self, handle: Handle) -> Result<u64, GpuFault> {
        let (mut count, mut resolution_uj, mut timestamp_ns) = (0_u64, 0_f32, 0_u64);
        // SAFETY: three valid out-pointers, as amdsmi_get_energy_count takes them.
        check(unsafe {
            (self.get_energy_count)(
                handle,
                &raw mut count,
                &raw mut resolution_uj,
                &raw mut timestamp_ns,
            )
        })?;
        Ok((count as f64 * f64::from(resolution_uj)) as u64)
    }

    /// The socket power in W: the current one where the device reports it (MI300 and later),
    /// else the average (MI200 and earlier, Navi); `None` when neither field is filled in
    /// (`u32::MAX`, the header's "unsupported").
    fn power_w(&self, handle: Handle) -> Result<Option<f64>, GpuFault> {
        let mut buffer = StructBuffer::new();
        // SAFETY: the buffer is larger than any version's amdsmi_power_info_t.
        check(unsafe { (self.get_power_info)(handle, buffer.as_mut_ptr()) })?;
        let (current_w, average_w) = if self.power_info_v25 {
            (buffer.u32_at(8), buffer.u32_at(12))
        } else {
            (buffer.u32_at(0), buffer.u32_at(4))
        };
        let filled = |w: u32| (w != u32::MAX).then_some(w);
        let power_w = filled(current_w)
            .filter(|w| *w > 0)
            .or_else(|| filled(average_w))
            .or_else(|| filled(current_w));
        Ok(power_w.map(f64::from))
    }

    fn uuid(&self, handle: Handle) -> Result<String, GpuFault> {
        let mut buffer = [0 as c_char; UUID_BUFFER];
        let mut length = UUID_BUFFER as u32;
        // SAFETY: the length says how much room the buffer has.
        check(unsafe { (self.get_gpu_device_uuid)(handle, &raw mut length, buffer.as_mut_ptr()) })?;
        buffer[UUID_BUFFER - 1] = 0;
        // SAFETY: NUL-terminated by the line above at the latest.
        let text = unsafe { CStr::from_ptr(buffer.as_ptr()) };
        Ok(text.to_string_lossy().trim().to_owned())
    }

    /// The market name (`AMD Instinct MI250X`), the first field of `amdsmi_asic_info_t` in
    /// every version.
    fn name(&self, handle: Handle) -> Option<String> {
        let get = self.get_gpu_asic_info?;
        let mut buffer = StructBuffer::new();
        // SAFETY: the buffer is larger than any version's amdsmi_asic_info_t.
        check(unsafe { get(handle, buffer.as_mut_ptr()) }).ok()?;
        Some(buffer.text(256)).filter(|name| !name.is_empty())
    }

    /// `amdsmi_bdf_t`: function 3 bits, device 5, bus 8, domain 48.
    fn pci_bus_id(&self, handle: Handle) -> Option<String> {
        let get = self.get_gpu_device_bdf?;
        let mut bdf = 0_u64;
        // SAFETY: amdsmi_bdf_t is a union over one uint64_t.
        check(unsafe { get(handle, &raw mut bdf) }).ok()?;
        Some(format!(
            "{:04x}:{:02x}:{:02x}.{:x}",
            bdf >> 16,
            (bdf >> 8) & 0xff,
            (bdf >> 3) & 0x1f,
            bdf & 0x7
        ))
    }

    /// `gfx_activity`, percent, the first field of `amdsmi_engine_usage_t`.
    fn utilization(&self, handle: Handle) -> Option<f64> {
        let get = self.get_gpu_activity?;
        let mut buffer = StructBuffer::new();
        // SAFETY: the buffer is larger than amdsmi_engine_usage_t.
        check(unsafe { get(handle, buffer.as_mut_ptr()) }).ok()?;
        Some(f64::from(buffer.u32_at(0).min(100)) / 100.0)
    }
}

/// Every processor handle, socket by socket, in amd-smi's order.
fn processor_handles(
    sockets: GetSocketHandles,
    processors: GetProcessorHandles,
) -> Result<Vec<Handle>, GpuFault> {
    let mut socket_count = 0_u32;
    // SAFETY: a null array asks for the count only, as amdsmi.h documents.
    check(unsafe { sockets(&raw mut socket_count, std::ptr::null_mut()) })?;
    let mut socket_handles = vec![std::ptr::null_mut(); socket_count as usize];
    // SAFETY: the array has room for `socket_count` handles.
    check(unsafe { sockets(&raw mut socket_count, socket_handles.as_mut_ptr()) })?;
    socket_handles.truncate(socket_count as usize);
    let mut all = Vec::new();
    for socket in socket_handles {
        let mut count = 0_u32;
        // SAFETY: as above, per socket.
        check(unsafe { processors(socket, &raw mut count, std::ptr::null_mut()) })?;
        let mut handles = vec![std::ptr::null_mut(); count as usize];
        // SAFETY: the array has room for `count` handles.
        check(unsafe { processors(socket, &raw mut count, handles.as_mut_ptr()) })?;
        handles.truncate(count as usize);
        all.extend(handles);
    }
    Ok(all)
}

/// One selected device.
struct Device {
    handle: Handle,
    /// The counter's last value and since when it has had it, for the frozen check.
    last_counter: Option<(u64, Instant)>,
}

/// The selected GPUs of one amd-smi library.
pub struct AmdSmiBackend {
    api: Api,
    devices: Vec<GpuDevice>,
    states: Vec<Device>,
}

// SAFETY: amd-smi's handles are opaque identifiers valid for the whole process while the
// library is initialised, not thread-bound; the backend is used by one thread at a time.
unsafe impl Send for AmdSmiBackend {}

impl Drop for AmdSmiBackend {
    fn drop(&mut self) {
        // SAFETY: initialised in `discover`; nothing uses the handles after this.
        unsafe { (self.api.shut_down)() };
    }
}

/// Loads amd-smi from `config.amdsmi_library` (or the system's, then ROCm's) and initialises
/// it; the error is the line that says why not (a warning too when the user named a library).
fn open(config: &GpuConfig, warnings: &mut Vec<String>) -> Result<AmdSmiBackend, String> {
    let named = config.amdsmi_library.as_deref();
    let candidates: Vec<&Path> = match named {
        Some(path) => vec![path],
        None => vec![
            Path::new(DEFAULT_AMDSMI_LIBRARY),
            Path::new(ROCM_AMDSMI_LIBRARY),
        ],
    };
    let mut load_errors = Vec::new();
    let mut loaded = None;
    for path in &candidates {
        match Api::load(path) {
            Ok(api) => {
                loaded = Some((path, api));
                break;
            }
            Err(err) => load_errors.push(err),
        }
    }
    let failed = |line: String, warnings: &mut Vec<String>| {
        if named.is_some() {
            // The user named a library: not finding it is worth a warning.
            warnings.push(line.clone());
        }
        line
    };
    let Some((path, (api, init, sockets, processors))) = loaded else {
        let line = format!(
            "no AMD GPU measured through amd-smi: cannot load {}: {}",
            candidates[0].display(),
            load_errors.join("; ")
        );
        return Err(failed(line, warnings));
    };
    // SAFETY: amdsmi_init takes its flags by value.
    if let Err(err) = check(unsafe { init(INIT_AMD_GPUS) }) {
        let line = format!(
            "no AMD GPU measured: amd-smi ({}) did not initialise: {err}",
            path.display()
        );
        return Err(failed(line, warnings));
    }
    // From here on the backend shuts the library down when dropped.
    let mut backend = AmdSmiBackend {
        api,
        devices: Vec::new(),
        states: Vec::new(),
    };
    let handles = processor_handles(sockets, processors)
        .map_err(|err| format!("amd-smi cannot list GPUs: {err}"))?;
    backend.states = handles
        .into_iter()
        .map(|handle| Device {
            handle,
            last_counter: None,
        })
        .collect();
    Ok(backend)
}

impl AmdSmiBackend {
    /// Every processor handle as a device, and those that did not answer with why.
    fn enumerate(&self) -> (Vec<GpuInfo>, Vec<(u32, GpuFault)>) {
        let mut all = Vec::new();
        let mut broken = Vec::new();
        for (index, state) in (0_u32..).zip(&self.states) {
            match self.api.uuid(state.handle) {
                Ok(uuid) => all.push(GpuInfo {
                    vendor: Vendor::Amd,
                    index,
                    uuid,
                    name: self
                        .api
                        .name(state.handle)
                        .unwrap_or_else(|| "AMD GPU".to_owned()),
                    pci_bus_id: self.api.pci_bus_id(state.handle),
                }),
                Err(err) => broken.push((index, err)),
            }
        }
        (all, broken)
    }

    /// Keeps the `chosen` devices, each with what it can report: a counter that moves over
    /// [`COUNTER_CHECK_S`] (Zeus's check), a power above 0 W (the second GCD of an MI250
    /// reports 0: its package's power is on the first).
    fn keep(&mut self, chosen: Vec<GpuInfo>, warnings: &mut Vec<String>) {
        let probes: Vec<(GpuInfo, Handle, Option<u64>, bool)> = chosen
            .into_iter()
            .filter_map(|info| {
                let handle = self.states.get(info.index as usize)?.handle;
                let energy_uj = self.api.energy_uj(handle).ok();
                let power_w = self.api.power_w(handle).ok().flatten();
                Some((info, handle, energy_uj, power_w.is_some_and(|w| w > 0.0)))
            })
            .collect();
        if probes.iter().any(|probe| probe.2.is_some()) {
            std::thread::sleep(Duration::from_secs_f64(COUNTER_CHECK_S));
        }
        self.states.clear();
        for (info, handle, energy_uj, has_power) in probes {
            let moved = energy_uj.is_some_and(|before_uj| {
                self.api
                    .energy_uj(handle)
                    .is_ok_and(|after_uj| after_uj > before_uj)
            });
            if energy_uj.is_some() && !moved && has_power {
                // Without a power either, the accounting's one `unmeasured` warning names it.
                warnings.push(format!(
                    "AMD GPU {} ({}): its energy counter did not move over {COUNTER_CHECK_S} s \
                     ({LIBRARY}): not used; its power is polled instead",
                    info.index, info.name
                ));
            }
            self.states.push(Device {
                handle,
                last_counter: None,
            });
            self.devices.push(GpuDevice {
                info,
                has_energy_counter: moved,
                has_power,
            });
        }
    }
}

/// Loads amd-smi, enumerates its devices and keeps those [`select::choose`] chooses by ROCm's
/// variables, each with what it can report.
pub fn discover(
    config: &GpuConfig,
    claimed: &[GpuDevice],
    warnings: &mut Vec<String>,
) -> Discovery {
    let mut backend = match open(config, warnings) {
        Ok(backend) => backend,
        Err(line) => return Discovery::Absent(line),
    };
    let (all, broken) = backend.enumerate();
    let chosen = select::choose(config, &Naming::Rocm, &all, &broken, claimed, warnings);
    if chosen.is_empty() {
        return Discovery::Absent(format!(
            "amd-smi found {} GPU(s), none selected for measurement",
            backend.states.len()
        ));
    }
    backend.keep(chosen, warnings);
    Discovery::Found(Box::new(backend))
}

impl GpuBackend for AmdSmiBackend {
    fn devices(&self) -> &[GpuDevice] {
        &self.devices
    }

    fn read(&mut self, position: usize, wanted: Wanted) -> DeviceRead {
        let Some(state) = self.states.get_mut(position) else {
            return DeviceRead::default();
        };
        let (api, handle) = (&self.api, state.handle);
        // Power first: it is the reading whose timing matters.
        let power_w = wanted
            .power
            .then(|| api.power_w(handle)?.ok_or(GpuFault::NotSupported));
        let power_now_w = power_w.as_ref().and_then(|r| r.as_ref().ok().copied());
        let energy_uj = wanted.energy.then(|| {
            let energy_uj = api.energy_uj(handle)?;
            frozen_check(&mut state.last_counter, energy_uj, power_now_w)?;
            Ok(energy_uj)
        });
        let lost = is_lost(power_w.as_ref()) || is_lost(energy_uj.as_ref());
        let utilization = (wanted.utilization && !lost)
            .then(|| api.utilization(handle))
            .flatten();
        DeviceRead {
            energy_uj,
            power_w,
            utilization,
        }
    }

    /// amd-smi's process list is a struct whose layout changed between versions: not read,
    /// so in process mode AMD GPUs are not counted (the meter warns about none of them).
    fn runs_any(&self, _position: usize, _pids: &HashSet<u32>) -> bool {
        false
    }
}

/// A counter that has not moved for [`FROZEN_AFTER_S`] while the device draws power is a
/// fault: the accounting then counts the polled power from the counter's last movement on.
fn frozen_check(
    last: &mut Option<(u64, Instant)>,
    energy_uj: u64,
    power_w: Option<f64>,
) -> Result<(), GpuFault> {
    let now = Instant::now();
    match *last {
        Some((value, since)) if value == energy_uj => {
            let still_s = now.duration_since(since).as_secs_f64();
            if still_s >= FROZEN_AFTER_S && power_w.is_some_and(|w| w > 0.0) {
                return Err(GpuFault::Other(format!(
                    "frozen at {} mJ for {still_s:.1} s while the GPU draws {:.0} W",
                    energy_uj / 1000,
                    power_w.unwrap_or(0.0)
                )));
            }
        }
        _ => *last = Some((energy_uj, now)),
    }
    Ok(())
}

fn is_lost<T>(read: Option<&Result<T, GpuFault>>) -> bool {
    matches!(read, Some(Err(GpuFault::Lost { .. })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_become_typed_faults() {
        assert_eq!(fault(STATUS_NOT_SUPPORTED), GpuFault::NotSupported);
        assert_eq!(fault(STATUS_NOT_FOUND), GpuFault::Lost { library: LIBRARY });
        assert_eq!(fault(7), GpuFault::Other("amd-smi status 7".to_owned()));
    }

    #[test]
    fn a_counter_frozen_while_drawing_power_is_a_fault() {
        let mut last = None;
        assert_eq!(frozen_check(&mut last, 5000, Some(300.0)), Ok(()));
        let since = Instant::now()
            .checked_sub(Duration::from_secs_f64(FROZEN_AFTER_S + 0.1))
            .expect("a past instant");
        last = Some((5000, since));
        // Idle (no power reported): a still counter is not judged.
        assert_eq!(frozen_check(&mut last, 5000, None), Ok(()));
        assert!(matches!(
            frozen_check(&mut last, 5000, Some(300.0)),
            Err(GpuFault::Other(text)) if text.contains("frozen at 5 mJ")
        ));
        // It moved: the clock starts again.
        assert_eq!(frozen_check(&mut last, 6000, Some(300.0)), Ok(()));
        assert_eq!(last.map(|(value, _)| value), Some(6000));
    }

    #[test]
    fn a_missing_named_library_is_one_warning() {
        let mut warnings = Vec::new();
        let config = GpuConfig {
            amdsmi_library: Some("/nonexistent/libamd_smi.so".into()),
            ..GpuConfig::default()
        };
        assert!(matches!(
            discover(&config, &[], &mut warnings),
            Discovery::Absent(_)
        ));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("/nonexistent/libamd_smi.so"),
            "{warnings:?}"
        );
    }
}
