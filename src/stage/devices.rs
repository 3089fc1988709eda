//! Finds the devices the settings name, waiting for them with `rootwait`/`rootdelay` semantics:
//! sleeping polls of sysfs, bounded by the configured timeouts.

use crate::blockdev::{self, BlockDev};
use crate::devspec::DevSpec;
use crate::error::{Error, Result};
use crate::plan::{DataState, Found};
use crate::probe;
use crate::report::now_us;
use crate::settings::Settings;
use crate::settings_ab::SlotSource;
use std::path::Path;
use std::time::Duration;

/// How often to look again while waiting: short enough not to add boot time, long enough not to
/// spin (a scan reads a few KiB per device).
const POLL: Duration = Duration::from_millis(20);

/// Bytes that must all be zero (or all 0xff) for the data partition to count as factory-blank.
const BLANK_PROBE: usize = 64 * 1024;

pub fn lookup<'a>(devs: &'a [BlockDev], spec: &DevSpec) -> Option<&'a BlockDev> {
    devs.iter().find(|d| d.matches(spec))
}

/// Finds the root (lower) and data devices. With `wait`, polls until both are there or their
/// deadlines pass: the root's is fatal, the data partition's leads to the data-missing policy.
pub fn find(s: &Settings, sysfs: &Path, dev: &Path, wait: bool) -> Result<Found> {
    if wait && s.rootdelay > 0 {
        log::info!("rootdelay: waiting {} s before looking for devices", s.rootdelay);
        std::thread::sleep(Duration::from_secs(s.rootdelay.into()));
    }
    let start = now_us();
    let deadline = |secs: u32| start + u64::from(secs) * 1_000_000;
    let (root_deadline, data_deadline) = (deadline(s.root_wait()), deadline(s.timeout));
    let slot_specs: Vec<Option<&DevSpec>> =
        s.ab.slots
            .iter()
            .map(|src| match src {
                Some(SlotSource::Partition(spec)) => Some(spec),
                _ => None,
            })
            .collect();
    loop {
        let devs = blockdev::scan(sysfs, dev);
        let root = s.root.as_ref().map(|spec| lookup(&devs, spec));
        let data = s.data.as_ref().map(|spec| lookup(&devs, spec));
        let slots: Vec<Option<Option<&BlockDev>>> =
            slot_specs.iter().map(|o| o.map(|spec| lookup(&devs, spec))).collect();
        let now = now_us();
        let present = |d: &Option<Option<&BlockDev>>| !matches!(d, Some(None));
        // A missing slot partition is not fatal (the other slot boots) but is waited for like root.
        let root_done = (present(&root) && slots.iter().all(present)) || !wait || now >= root_deadline;
        let data_done = present(&data) || !wait || now >= data_deadline;
        if root_done && data_done {
            let mut found = resolve(s, &devs, root.flatten(), data, dev, now.saturating_sub(start))?;
            for (i, d) in slots.into_iter().enumerate() {
                found.slots[i] = d.flatten().cloned();
            }
            return Ok(found);
        }
        std::thread::sleep(POLL);
    }
}

fn resolve(
    s: &Settings,
    devs: &[BlockDev],
    root: Option<&BlockDev>,
    data: Option<Option<&BlockDev>>,
    dev: &Path,
    waited_us: u64,
) -> Result<Found> {
    let saw = || devs.iter().map(|d| d.to_string()).collect::<Vec<_>>();
    if let (Some(spec), None) = (&s.root, root) {
        return Err(Error::DeviceNotFound {
            what: "root (lower image)",
            spec: spec.to_string(),
            waited: (waited_us / 1_000_000) as u32,
            saw: saw(),
        });
    }
    let data = match (data, &s.data) {
        (None, _) | (_, None) => DataState::NotConfigured,
        (Some(Some(d)), _) => {
            let blank = d.fs.is_none()
                && blockdev::read_head(&dev.join(&d.name), 0, BLANK_PROBE).is_some_and(|b| probe::is_blank(&b));
            DataState::Found { dev: d.clone(), blank }
        }
        (Some(None), Some(spec)) => DataState::Missing(format!(
            "data partition {spec} not found after {} s (saw: {})",
            waited_us / 1_000_000,
            saw().join(", ")
        )),
    };
    Ok(Found { root: root.cloned(), data, slots: [None, None] })
}
