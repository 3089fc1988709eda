//! The segments `kexec_load` needs on 32-bit ARM (Debian's armhf kernels have `kexec_load`, not
//! `kexec_file_load`): where the zImage, the device tree and the initramfs go. No purgatory: the
//! running kernel's relocation code enters the zImage itself with r0 = 0, r1 = the machine type
//! and r2 = the address of the segment that starts with the device-tree magic
//! (arch/arm/kernel/machine_kexec.c).
//!
//! Where, from Documentation/arch/arm/booting.rst: the zImage within the first 128 MiB of RAM and
//! above 32 MiB, so that it does not have to move itself before it decompresses the kernel to the
//! start of RAM; the device tree and the initramfs "just above the 128MiB boundary from start of
//! RAM", which the decompressed kernel does not reach.

use crate::rt::prelude::*;

const PAGE: u64 = 4096;
const MIB: u64 = 1 << 20;
/// The zImage's place from the start of RAM, and the end of the window it must lie in.
const ZIMAGE_AT: u64 = 32 * MIB;
const ZIMAGE_WINDOW: u64 = 128 * MIB;

/// Where each piece goes, physical addresses; every segment page-aligned. The entry is the
/// zImage's first instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub kernel: u64,
    pub dtb: u64,
    pub initrd: u64,
}

/// Places the zImage 32 MiB into the first RAM range that holds everything, the device tree at
/// 128 MiB and the initramfs after it.
pub fn layout(ram: &[(u64, u64)], zimage_len: u64, initrd_len: u64, dtb_len: u64) -> Result<Layout, String> {
    let up = |x: u64| x.div_ceil(PAGE) * PAGE;
    if ZIMAGE_AT + zimage_len > ZIMAGE_WINDOW {
        return Err(format!("the zImage is {zimage_len} bytes: it must end within the first 128 MiB of RAM"));
    }
    for &(start, end) in ram {
        let start = up(start);
        let dtb = start + ZIMAGE_WINDOW;
        let initrd = up(dtb + dtb_len);
        if initrd + initrd_len <= end.saturating_add(1) {
            return Ok(Layout { kernel: start + ZIMAGE_AT, dtb, initrd });
        }
    }
    Err(format!(
        "no RAM range holds 128 MiB for the zImage plus its device tree ({dtb_len} bytes) and initramfs ({initrd_len}): \
         RAM is {}",
        ram.iter().map(|(a, b)| format!("{a:#x}-{b:#x}")).collect::<Vec<_>>().join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zimage_device_tree_and_initramfs_places() {
        // QEMU's virt machine with 256 MiB: RAM at 1 GiB.
        let ram = [(0x4000_0000, 0x4fff_ffff)];
        let l = layout(&ram, 5 << 20, 20 << 20, 0x1_0100).unwrap();
        assert_eq!(l, Layout { kernel: 0x4200_0000, dtb: 0x4800_0000, initrd: 0x4801_1000 });
        // An initramfs that does not fit above 128 MiB; a first range too small for any of it.
        assert!(layout(&ram, 5 << 20, 200 << 20, 4096).unwrap_err().contains("0x40000000-0x4fffffff"));
        let two = [(0x1000_0000, 0x107f_ffff), (0x8000_0000, 0x9fff_ffff)];
        assert_eq!(layout(&two, 5 << 20, 1 << 20, 4096).unwrap().kernel, 0x8200_0000);
        // A zImage too large for the window below 128 MiB.
        assert!(layout(&ram, 100 << 20, 1, 1).unwrap_err().contains("first 128 MiB"));
    }
}
