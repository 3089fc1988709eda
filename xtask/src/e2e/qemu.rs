//! Boots a board in QEMU (software emulation) with a timeout, capturing the serial console.

use crate::board::Board;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the kernel prints when it powers off a machine QEMU cannot switch off (sabrelite has
/// no power controller): the run is over, as when QEMU exits by itself.
const HALTED: &str = "reboot: System halted";

pub struct Boot {
    pub console: String,
    pub timed_out: bool,
    pub panicked: bool,
}

impl Boot {
    /// The value the guest test init printed as `OI: key=value`; the last one when the console
    /// holds several boots (watchdog resets).
    pub fn marker(&self, key: &str) -> Option<String> {
        let prefix = format!("OI: {key}=");
        self.console
            .lines()
            .filter_map(|l| l.trim_end_matches('\r').split_once(&prefix).map(|(_, v)| v.to_string()))
            .next_back()
    }

    /// The JSON boot report the guest printed between markers.
    pub fn report(&self) -> Option<String> {
        let start = self.console.find("OI-REPORT-BEGIN")?;
        let end = self.console.find("OI-REPORT-END")?;
        self.console.get(start + "OI-REPORT-BEGIN".len()..end).map(|s| s.replace('\r', ""))
    }
}

pub struct Run<'a> {
    pub board: &'a Board,
    pub initrd: &'a Path,
    pub disk: Option<&'a Path>,
    pub append: String,
    pub timeout: Duration,
    pub log: &'a Path,
    /// Let the guest reboot (watchdog resets) instead of exiting QEMU on the first reset.
    pub allow_reboot: bool,
    /// Cut the power: SIGKILL QEMU this long after the marker appears on the console.
    pub cut: Option<(&'a str, Duration)>,
    pub drive: Drive<'a>,
    /// vCPUs, as the board has cores; else `OI_SMP`, else QEMU's one.
    pub smp: Option<u32>,
}

/// How the disk is attached.
#[derive(Clone, Copy)]
pub enum Drive<'a> {
    Plain,
    /// Record every write and flush to this file (QEMU's blklogwrites driver).
    WriteLog(&'a Path),
    /// Inject errors with this blkdebug rule file (a failing disk).
    Debug(&'a Path),
}

/// The command line with each `\xNN` turned into that raw byte, so a scenario can hand the
/// kernel bytes that are not UTF-8 (QEMU passes -append through unchanged).
fn raw_bytes(text: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&c, tail)) = rest.split_first() {
        let hex = tail.strip_prefix(b"x").and_then(|t| t.get(..2)).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) if c == b'\\' => {
                out.push(byte);
                rest = &tail[3..];
            }
            _ => {
                out.push(c);
                rest = tail;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
}

pub fn boot(r: &Run<'_>) -> Result<Boot, String> {
    let b = r.board;
    let mut c = Command::new(&b.qemu);
    c.args(&b.qemu_args)
        // No network: a test guest talks to nothing but its console and its disk.
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none", "-nic", "none"])
        .args(if r.allow_reboot { &[][..] } else { &["-no-reboot"][..] })
        .arg("-kernel")
        .arg(b.kernel_dir.join("vmlinuz"))
        .arg("-initrd")
        .arg(r.initrd)
        .arg("-append")
        .arg(raw_bytes(&format!("{} {}", b.cmdline, r.append)));
    if let Some(dtb) = &b.qemu_dtb {
        c.arg("-dtb").arg(dtb);
    }
    if let Some(disk) = r.disk {
        let d = disk.display();
        // `if=sd,bus=N` names the host on the drive itself; a device takes the drive by its id.
        let on_drive = b.qemu_disk.starts_with("if=");
        let attach = if on_drive { b.qemu_disk.as_str() } else { "if=none,id=d0" };
        c.arg("-drive").arg(match r.drive {
            Drive::Plain => format!("file={d},format=raw,{attach}"),
            Drive::WriteLog(log) => format!(
                "{attach},driver=blklogwrites,file.driver=file,file.filename={d},log.driver=file,log.filename={}",
                log.display()
            ),
            Drive::Debug(rules) => {
                format!("{attach},driver=blkdebug,config={},image.driver=file,image.filename={d}", rules.display())
            }
        });
        if !on_drive {
            c.arg("-device").arg(format!("{},drive=d0", b.qemu_disk));
        }
    }
    // OI_SMP=N: N vCPUs (QEMU runs TCG multi-threaded then), to measure parallel module loading.
    let smp = r.smp.or_else(|| std::env::var("OI_SMP").ok().and_then(|n| n.parse::<u32>().ok()));
    if let Some(n) = smp.filter(|&n| n > 1) {
        c.args(["-smp", &n.to_string()]);
    }
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e} (run tests/setup.sh)", b.qemu))?;
    let out = Arc::new(Mutex::new(String::new()));
    let mut readers = Vec::new();
    for mut stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let out = Arc::clone(&out);
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut o) = out.lock() {
                    o.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        }));
    }
    let start = Instant::now();
    let mut timed_out = false;
    let mut panicked = false;
    let mut cut_at: Option<Instant> = None;
    loop {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            break;
        }
        let (seen_panic, seen_marker, halted) = out
            .lock()
            .map(|o| (o.contains("Kernel panic"), r.cut.is_some_and(|(m, _)| o.contains(m)), o.contains(HALTED)))
            .unwrap_or((false, false, false));
        panicked = seen_panic;
        if halted {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        if seen_marker && cut_at.is_none() {
            cut_at = r.cut.map(|(_, d)| Instant::now() + d);
        }
        if cut_at.is_some_and(|t| Instant::now() >= t) {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        if panicked || start.elapsed() > r.timeout {
            timed_out = !panicked;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for t in readers {
        let _ = t.join();
    }
    let console = out.lock().map(|o| o.clone()).unwrap_or_default();
    let _ = std::fs::write(r.log, &console);
    Ok(Boot { panicked: panicked || console.contains("Kernel panic"), console, timed_out })
}

#[cfg(test)]
mod tests {
    #[test]
    fn raw_bytes_on_the_command_line() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(super::raw_bytes("a x=\\xff b\\xZZ").as_bytes(), b"a x=\xff b\\xZZ");
    }
}
