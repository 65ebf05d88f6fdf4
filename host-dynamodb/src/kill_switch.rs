//! The kill switch: an environment variable that turns every breaker of the process into a
//! plain call, read at call time (as the Powertools breaker reads its own).

use fleetbreaker_core::ConfigError;

use crate::Error;

/// The variables that turn breakers off: fleetbreaker's own, and the Powertools breaker's, so
/// that moving from it keeps a switch that is already set.
pub const KILL_SWITCH_VARIABLES: [&str; 2] = [
    "FLEETBREAKER_DISABLED",
    "POWERTOOLS_CIRCUIT_BREAKER_DISABLED",
];

/// Whether the kill switch is on: either variable set to a true value (`1`, `true`, `yes`,
/// `on`, `y`, `t`, in any case). Unset, empty or false (`0`, `false`, `no`, `off`, `n`, `f`):
/// off. Anything else is a configuration error naming the variable.
///
/// Breakers read it whenever they would ask the circuit (not under the admission lease, where
/// a call is admitted either way), so setting it takes effect at the next such call. Meant for
/// development: with it on, nothing protects the downstream.
pub fn kill_switch() -> Result<bool, Error> {
    let mut on = false;
    for (name, raw) in variables() {
        let value = raw.trim().to_ascii_lowercase();
        match value.as_str() {
            "1" | "true" | "yes" | "on" | "y" | "t" => on = true,
            "" | "0" | "false" | "no" | "off" | "n" | "f" => {}
            _ => {
                return Err(Error::Config(ConfigError {
                    field: name.to_string(),
                    message: format!(
                        "must be a truth value (true/false, yes/no, on/off, 1/0), got {value:?}"
                    ),
                }));
            }
        }
    }
    Ok(on)
}

/// The kill-switch variables that are set, with their values. Read on every call that would
/// reject, probe or count: so in one pass over the environment, without std's environment lock
/// and without allocating when none is set (the usual case). Hosts (Python, Node) change the
/// environment with `setenv`, which this sees.
#[cfg(target_os = "linux")]
fn variables() -> Vec<(&'static str, String)> {
    unsafe extern "C" {
        static environ: *const *const libc::c_char;
    }
    let mut found = Vec::new();
    // SAFETY: `environ` is the process's NUL-terminated array of NUL-terminated strings; it
    // is read at once, as getenv reads it.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let first = **entry as u8;
            // Both names start with one of these; most entries are passed over on one byte.
            if first == b'F' || first == b'P' {
                let text = std::ffi::CStr::from_ptr(*entry).to_bytes();
                for name in KILL_SWITCH_VARIABLES {
                    if let Some(value) = text
                        .strip_prefix(name.as_bytes())
                        .and_then(|rest| rest.strip_prefix(b"="))
                    {
                        found.push((name, String::from_utf8_lossy(value).into_owned()));
                    }
                }
            }
            entry = entry.add(1);
        }
    }
    found
}

#[cfg(not(target_os = "linux"))]
fn variables() -> Vec<(&'static str, String)> {
    KILL_SWITCH_VARIABLES
        .into_iter()
        .filter_map(|name| std::env::var_os(name).map(|v| (name, v.to_string_lossy().into_owned())))
        .collect()
}
