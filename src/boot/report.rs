//! The boot report: what was found, mounted and decided, and the time each stage took, written as
//! JSON under /run for userspace (and `status`) to read after the switch.

use crate::rt::prelude::*;
use crate::sys::clock::{cpu_us, now_us};
use crate::util::json::json_str;
use core::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageTime {
    pub name: &'static str,
    pub start_us: u64,
    pub total_us: u64,
    /// Time spent inside the syscalls that do the kernel's work (finit_module, mount, ...).
    pub kernel_us: u64,
    /// CPU time the process used in the stage, all its threads, by the kernel's own accounting
    /// (`getrusage`): in user mode, which is the init's own code, and in the kernel on its
    /// behalf (every syscall and page fault, booked above or not). The rest of `total_us` is
    /// waiting, and on one CPU the kernel's work outside the process (its workers, interrupts).
    pub user_us: u64,
    pub system_us: u64,
}

/// What dm-verity was set up with, for userspace and the tests (`dmsetup table` agrees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub device: String,
    pub image: String,
    pub root_hash: String,
    /// The device holding the tree (the image's own when appended) and the superblock's offset.
    pub hash: String,
    pub hash_offset: u64,
    pub trust: String,
    pub checked_all: bool,
    /// Parity bytes and byte offset of the error correction area (0, 0: none).
    pub fec_roots: u8,
    pub fec_offset: u64,
    /// The signed security version (0: signed without a manifest); None: not signed.
    pub security_version: Option<u32>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub stages: Vec<StageTime>,
    pub devices: Vec<String>,
    pub modules: Vec<String>,
    pub steps: Vec<String>,
    pub volatile: Option<String>,
    pub fallbacks: Vec<String>,
    pub warnings: Vec<String>,
    pub init: String,
    /// The A/B slot booted and why, when slots are configured.
    pub slot: Option<(String, String)>,
    /// The verified lower, when dm-verity is on.
    pub verity: Option<Verified>,
    /// The counts of a reconciliation this boot (details in reconcile.json).
    pub reconcile: Option<String>,
    /// e2fsck's exit code, when it ran (0 clean, 1 errors corrected, 4 errors left).
    pub fsck_exit: Option<i32>,
    /// The running kernel (`uname -r`).
    pub kernel: String,
    /// Stage two of a kernel hand-over: stage one's kernel and its milliseconds to the hand-over.
    pub stage1: Option<(String, u64)>,
    current: Option<Running>,
}

/// The stage under way: its name, when it started, the kernel time booked to it so far and the
/// process's CPU times (user, system) at its start.
#[derive(Debug)]
struct Running {
    name: &'static str,
    start_us: u64,
    kernel_us: u64,
    cpu_at_start: (u64, u64),
}

impl Report {
    /// Ends the running stage (if any) and starts `name`.
    pub fn stage(&mut self, name: &'static str) {
        self.end_stage();
        log::debug!("stage {name}");
        self.current = Some(Running { name, start_us: now_us(), kernel_us: 0, cpu_at_start: cpu_us() });
    }

    pub fn end_stage(&mut self) {
        if let Some(Running { name, start_us, kernel_us, cpu_at_start: (user0, system0) }) = self.current.take() {
            let total_us = now_us().saturating_sub(start_us);
            let (user, system) = cpu_us();
            let (user_us, system_us) = (user.saturating_sub(user0), system.saturating_sub(system0));
            log::info!(
                "stage {name} done in {total_us} us ({kernel_us} us in the kernel; cpu {user_us} us user, {system_us} us system)"
            );
            self.stages.push(StageTime { name, start_us, total_us, kernel_us, user_us, system_us });
        }
    }

    /// Runs a syscall that does kernel work and books its time to the current stage.
    pub fn kernel<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = now_us();
        let out = f();
        if let Some(c) = &mut self.current {
            c.kernel_us += now_us().saturating_sub(t);
        }
        out
    }

    /// Books kernel work measured elsewhere (parallel module loads) to the current stage.
    pub fn add_kernel_us(&mut self, us: u64) {
        if let Some(c) = &mut self.current {
            c.kernel_us += us;
        }
    }

    pub fn to_json(&self) -> String {
        let mut o = String::from("{\n");
        let _ = writeln!(o, "  \"version\": {},", json_str(env!("CARGO_PKG_VERSION")));
        let _ = writeln!(o, "  \"volatile\": {},", self.volatile.as_deref().map_or_else(|| "null".into(), json_str));
        for (key, list) in [
            ("devices", &self.devices),
            ("modules", &self.modules),
            ("steps", &self.steps),
            ("fallbacks", &self.fallbacks),
            ("warnings", &self.warnings),
        ] {
            let items: Vec<String> = list.iter().map(|s| json_str(s)).collect();
            let _ = writeln!(o, "  \"{key}\": [{}],", items.join(", "));
        }
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|s| {
                format!(
                    "{{\"name\": \"{}\", \"start_us\": {}, \"total_us\": {}, \"kernel_us\": {}, \"user_us\": {}, \"system_us\": {}}}",
                    s.name, s.start_us, s.total_us, s.kernel_us, s.user_us, s.system_us
                )
            })
            .collect();
        let _ = writeln!(o, "  \"stages\": [{}],", stages.join(", "));
        if let Some((slot, why)) = &self.slot {
            let _ = writeln!(o, "  \"slot\": {},\n  \"slot_reason\": {},", json_str(slot), json_str(why));
        }
        if let Some(r) = &self.reconcile {
            let _ = writeln!(o, "  \"reconcile\": {},", json_str(r));
        }
        if let Some(v) = &self.verity {
            let _ = writeln!(
                o,
                "  \"verity\": {{\"device\": {}, \"image\": {}, \"root_hash\": {}, \"hash\": {}, \"hash_offset\": {}, \"trust\": {}, \"checked_all\": {}, \"fec_roots\": {}, \"fec_offset\": {}, \"security_version\": {}}},",
                json_str(&v.device),
                json_str(&v.image),
                json_str(&v.root_hash),
                json_str(&v.hash),
                v.hash_offset,
                json_str(&v.trust),
                v.checked_all,
                v.fec_roots,
                v.fec_offset,
                v.security_version.map_or_else(|| "null".to_string(), |n| n.to_string())
            );
        }
        let _ = writeln!(o, "  \"kernel\": {},", json_str(&self.kernel));
        if let Some((kernel, ms)) = &self.stage1 {
            let _ = writeln!(o, "  \"stage1\": {{\"kernel\": {}, \"ms\": {ms}}},", json_str(kernel));
        }
        if let Some(code) = self.fsck_exit {
            let _ = writeln!(o, "  \"fsck_exit\": {code},");
        }
        let _ = writeln!(o, "  \"init\": {}", json_str(&self.init));
        o.push_str("}\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_shape() {
        let mut r = Report::default();
        r.stage("modules");
        r.kernel(|| std::thread::sleep(std::time::Duration::from_millis(2)));
        r.end_stage();
        r.volatile = Some("no data".into());
        r.devices.push("lower: /dev/vda1".into());
        let j = r.to_json();
        assert!(j.contains("\"volatile\": \"no data\""));
        assert!(j.contains("\"name\": \"modules\""));
        assert!(r.stages[0].kernel_us >= 2000 && r.stages[0].total_us >= r.stages[0].kernel_us);
        assert!(j.contains("\"devices\": [\"lower: /dev/vda1\"]"));
    }

    #[test]
    fn a_stage_that_computes_books_cpu_time() {
        let mut r = Report::default();
        r.stage("busy");
        // Spins until the kernel has booked 5 ms of CPU to this process (the kernel's accounting
        // advances in ticks). Bounded by work done, not by the clock, so a loaded host only makes
        // it take longer: each round is a syscall, and 100 million of them are far more than 5 ms.
        let cpu0 = cpu_us();
        let mut rounds = 0u64;
        while {
            let (u, s) = cpu_us();
            u + s < cpu0.0 + cpu0.1 + 5000 && rounds < 100_000_000
        } {
            rounds = std::hint::black_box(rounds + 1);
        }
        r.end_stage();
        let s = &r.stages[0];
        assert!(s.user_us + s.system_us >= 5000, "{s:?}");
        assert!(r.to_json().contains(&format!("\"user_us\": {}, \"system_us\": {}", s.user_us, s.system_us)));
    }
}
