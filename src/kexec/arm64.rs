//! The segments `kexec_load` needs on arm64, where Debian's kernels have no `kexec_file_load`:
//! where in RAM the kernel `Image`, the initramfs, the device tree and a purgatory go, and the
//! purgatory itself (the few instructions that enter the kernel the way
//! Documentation/arch/arm64/booting.rst asks: x0 = the device tree's physical address, x1 to x3
//! zero, MMU and caches off, which the running kernel's relocation code has done).

use crate::rt::prelude::*;

/// Page size of the segments (the kernel wants them page-aligned).
const PAGE: u64 = 4096;
/// The kernel's base must be 2 MiB aligned (booting.rst).
const KERNEL_ALIGN: u64 = 2 << 20;

/// What the 64-byte `Image` header says (booting.rst, "Call the kernel image").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub text_offset: u64,
    /// The memory the kernel needs from its start, bss included (0 in kernels before 3.17).
    pub image_size: u64,
}

pub fn header(head: &[u8]) -> Result<ImageHeader, String> {
    let le64 = |at: usize| head.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
    if head.get(0x38..0x3c) != Some(b"ARM\x64") {
        return Err("not an arm64 Image (its header has no kernel magic)".into());
    }
    let (Some(text_offset), Some(image_size), Some(flags)) = (le64(8), le64(16), le64(24)) else {
        return Err("the Image header is truncated".into());
    };
    if flags & 1 != 0 {
        return Err("a big-endian Image: the running kernel is little-endian".into());
    }
    if image_size == 0 {
        return Err("an Image without image_size (a kernel before 3.17)".into());
    }
    Ok(ImageHeader { text_offset, image_size })
}

/// The RAM ranges `[start, end]` of /proc/iomem's top-level "System RAM" lines.
pub fn system_ram(iomem: &str) -> Vec<(u64, u64)> {
    iomem
        .lines()
        .filter(|l| !l.starts_with(' ') && l.trim_end().ends_with(": System RAM"))
        .filter_map(|l| {
            let (range, _) = l.split_once(" : ")?;
            let (a, b) = range.trim().split_once('-')?;
            Some((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(b, 16).ok()?))
        })
        .collect()
}

/// Where each piece goes, physical addresses; every segment page-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub kernel: u64,
    pub kernel_mem: u64,
    pub initrd: u64,
    pub dtb: u64,
    pub purgatory: u64,
}

/// Places the kernel at the first 2 MiB boundary of the first RAM range that holds everything
/// (plus `text_offset`), then the initramfs, the device tree and the purgatory after it, each on
/// its own pages (the device tree within one 2 MiB block, as booting.rst requires).
pub fn layout(ram: &[(u64, u64)], h: ImageHeader, initrd_len: u64, dtb_len: u64) -> Result<Layout, String> {
    let up = |x: u64, a: u64| x.div_ceil(a) * a;
    if dtb_len > KERNEL_ALIGN {
        return Err(format!("the device tree is {dtb_len} bytes, more than the 2 MiB booting.rst allows"));
    }
    for &(start, end) in ram {
        let kernel = up(start, KERNEL_ALIGN) + h.text_offset;
        let kernel_mem = up(h.image_size, PAGE);
        let initrd = up(kernel + kernel_mem, PAGE);
        let mut dtb = up(initrd + initrd_len, PAGE);
        if dtb / KERNEL_ALIGN != (dtb + dtb_len) / KERNEL_ALIGN {
            dtb = up(dtb, KERNEL_ALIGN);
        }
        let purgatory = up(dtb + dtb_len, PAGE);
        if purgatory + PAGE - 1 <= end {
            return Ok(Layout { kernel, kernel_mem, initrd, dtb, purgatory });
        }
    }
    Err(format!(
        "no RAM range holds the kernel ({} bytes), its initramfs ({initrd_len}) and device tree ({dtb_len}): RAM is {}",
        h.image_size,
        ram.iter().map(|(a, b)| format!("{a:#x}-{b:#x}")).collect::<Vec<_>>().join(", ")
    ))
}

/// The purgatory: x0 = `dtb`, x1 = x2 = x3 = 0, branch to `kernel`.
pub fn purgatory(kernel: u64, dtb: u64) -> Vec<u8> {
    let code: [u32; 6] = [
        0x5800_00c0, // ldr x0, .+0x18 (the device tree's address below)
        0xaa1f_03e1, // mov x1, xzr
        0xaa1f_03e2, // mov x2, xzr
        0xaa1f_03e3, // mov x3, xzr
        0x5800_0084, // ldr x4, .+0x10 (the kernel's address below)
        0xd61f_0080, // br x4
    ];
    let mut out: Vec<u8> = code.iter().flat_map(|w| w.to_le_bytes()).collect();
    out.extend_from_slice(&dtb.to_le_bytes());
    out.extend_from_slice(&kernel.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(text_offset: u64, image_size: u64, flags: u64) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[8..16].copy_from_slice(&text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&image_size.to_le_bytes());
        h[24..32].copy_from_slice(&flags.to_le_bytes());
        h[0x38..0x3c].copy_from_slice(b"ARM\x64");
        h
    }

    #[test]
    fn header_and_refusals() {
        // Debian 6.1's arm64 Image: text_offset 0, image_size 0x2010000, flags 0xa.
        assert_eq!(header(&image(0, 0x201_0000, 0xa)), Ok(ImageHeader { text_offset: 0, image_size: 0x201_0000 }));
        assert!(header(&image(0, 0x201_0000, 0xb)).unwrap_err().contains("big-endian"));
        assert!(header(&image(0x8_0000, 0, 0)).unwrap_err().contains("3.17"));
        assert!(header(&[0u8; 64]).unwrap_err().contains("not an arm64 Image"));
    }

    #[test]
    fn ram_and_layout() {
        let iomem =
            "09000000-09000fff : pl011@9000000\n40000000-4fffffff : System RAM\n  40210000-4167ffff : Kernel code\n";
        let ram = system_ram(iomem);
        assert_eq!(ram, vec![(0x4000_0000, 0x4fff_ffff)]);
        let h = ImageHeader { text_offset: 0, image_size: 0x201_0000 };
        let l = layout(&ram, h, 5_000_000, 100_000).unwrap();
        assert_eq!((l.kernel, l.kernel_mem), (0x4000_0000, 0x201_0000));
        assert_eq!(l.initrd, 0x4201_0000);
        assert!(l.dtb >= l.initrd + 5_000_000 && l.dtb % PAGE == 0);
        assert_eq!(l.dtb / KERNEL_ALIGN, (l.dtb + 100_000) / KERNEL_ALIGN);
        assert!(l.purgatory >= l.dtb + 100_000 && l.purgatory % PAGE == 0);
        // A first range too small is skipped; none big enough is an error naming the RAM.
        let two = [(0x4000_0000, 0x40ff_ffff), (0x8000_0000, 0x8fff_ffff)];
        assert_eq!(layout(&two, h, 1, 1).unwrap().kernel, 0x8000_0000);
        assert!(layout(&two[..1], h, 1, 1).unwrap_err().contains("0x40000000-0x40ffffff"));
        assert!(layout(&ram, h, 1, 3 << 20).unwrap_err().contains("2 MiB"));
    }

    #[test]
    fn purgatory_loads_its_literals() {
        let p = purgatory(0x4000_0000, 0x4300_0000);
        assert_eq!(p.len(), 40);
        // ldr x0 at 0 reads 0x18 further on, ldr x4 at 0x10 reads 0x10 further on (imm19 * 4).
        let imm = |w: u32| ((w >> 5) & 0x7ffff) * 4;
        let word = |at: usize| u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
        assert_eq!((word(0) & 0x1f, imm(word(0))), (0, 0x18));
        assert_eq!((word(0x10) & 0x1f, imm(word(0x10))), (4, 0x10));
        assert_eq!(&p[0x18..0x20], &0x4300_0000u64.to_le_bytes());
        assert_eq!(&p[0x20..0x28], &0x4000_0000u64.to_le_bytes());
    }
}
