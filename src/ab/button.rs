//! The factory-reset button: a GPIO line held active at power-on for a configured time. Its
//! setting and the hold decision; `boot::button` reads the line.

use crate::rt::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub chip: String,
    pub line: u32,
    pub active_low: bool,
    pub hold_secs: u32,
}

impl Button {
    /// `CHIP:LINE[:low|high][:SECONDS]`, e.g. `/dev/gpiochip0:17:low:5` (default high, 5 s).
    pub fn parse(v: &str) -> Result<Button, String> {
        let mut parts = v.split(':');
        let chip = parts.next().filter(|c| c.starts_with("/dev/")).ok_or("must start with the chip's /dev path")?;
        let line = parts.next().and_then(|l| l.parse().ok()).ok_or("needs a line number after the chip")?;
        let mut b = Button { chip: chip.into(), line, active_low: false, hold_secs: 5 };
        for p in parts {
            match p {
                "low" => b.active_low = true,
                "high" => b.active_low = false,
                n => {
                    b.hold_secs =
                        n.parse().ok().filter(|s| (1..=60).contains(s)).ok_or("hold time must be 1 to 60 s")?
                }
            }
        }
        Ok(b)
    }

    /// Samples every 100 ms covering the hold time.
    pub fn samples_needed(&self) -> u32 {
        self.hold_secs * 10
    }
}

/// Held when `needed` samples in a row are active; stops at the first inactive or failed one,
/// so an unpressed button costs one sample.
pub fn held_for(mut sample: impl FnMut() -> Option<bool>, needed: u32) -> bool {
    (0..needed).all(|_| sample() == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms() {
        assert_eq!(
            Button::parse("/dev/gpiochip0:17:low:3").unwrap(),
            Button { chip: "/dev/gpiochip0".into(), line: 17, active_low: true, hold_secs: 3 }
        );
        assert_eq!(Button::parse("/dev/gpiochip1:4").unwrap().hold_secs, 5);
        for bad in ["gpiochip0:1", "/dev/gpiochip0", "/dev/gpiochip0:x", "/dev/gpiochip0:1:99"] {
            assert!(Button::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn held_needs_every_sample_and_stops_early() {
        let mut calls = 0;
        assert!(!held_for(
            || {
                calls += 1;
                Some(false)
            },
            50
        ));
        assert_eq!(calls, 1);
        assert!(held_for(|| Some(true), 30));
        let mut seq = [true, true, false, true].into_iter();
        assert!(!held_for(|| seq.next(), 4));
        assert!(!held_for(|| None, 1));
    }
}
