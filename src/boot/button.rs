//! Samples the factory-reset button's GPIO line at power-on (the hold rule is `ab::button`).

use crate::ab::button::{held_for, Button};
use crate::rt::time::Duration;
use crate::rt::Why;
use crate::sys::gpio::Line;

const SAMPLE: Duration = Duration::from_millis(100);

/// Reads the line; an unreadable button never triggers a reset (it is logged).
pub fn held(b: &Button) -> bool {
    let line = match Line::request(&b.chip, b.line, b.active_low) {
        Ok(l) => l,
        Err((call, e)) => {
            log::warn!("reset button {}:{}: {call}: {e}; ignored", b.chip, b.line, e = Why(e));
            return false;
        }
    };
    let held = held_for(
        || {
            let v = line.active().ok();
            crate::rt::thread::sleep(SAMPLE);
            v
        },
        b.samples_needed(),
    );
    if held {
        log::warn!("reset button held for {} s", b.hold_secs);
    }
    held
}
