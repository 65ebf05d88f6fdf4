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
    for name in KILL_SWITCH_VARIABLES {
        let Some(raw) = std::env::var_os(name) else {
            continue;
        };
        let value = raw.to_string_lossy().trim().to_ascii_lowercase();
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
