# The Apalis iMX6's part of boot.scr, compiled ahead of board/integration/uboot/boot.cmd into
# one script (cargo xtask's disk, Buildroot's post-image.sh) on the FAT partition 1, where
# U-Boot's distro boot (Toradex's U-Boot boots with distro_bootcmd) finds it and sets devtype
# and devnum for the device it came from.
#
# The selection (BOOT_ORDER, BOOT_x_LEFT) lives in U-Boot's own environment in the eMMC's first
# boot partition, which Linux reaches through board/imx6/fw_env.config: no oi_state_if, saveenv.
#
# oi_load boots the chosen slot from its boot partition (MBR logical partition 6: boot_a, 7:
# boot_b; cargo xtask check-boards checks the numbers against genimage.cfg and the settings):
# the zImage, the device tree and the initramfs, all copied there from the slot's root image by
# `overlay-init install`. Addresses of Toradex's U-Boot (RAM from 0x10000000): the zImage at its
# load address, 32 MiB above the kernel it unpacks; the device tree and the initramfs at the
# environment's fdt_addr_r and ramdisk_addr_r. The command line is the board's
# (board/imx6/cmdline) plus U-Boot A/B mode, the slots by PARTUUID (an MBR has no names).
setenv oi_load 'setenv oi_part 7; test "${oi_slot}" = A && setenv oi_part 6; setenv bootargs "console=ttymxc0,115200 quiet rootwait oinit.a=PARTUUID=0a6c1e5f-02 oinit.b=PARTUUID=0a6c1e5f-05 oinit.bootloader=uboot oinit.aboot=PARTUUID=0a6c1e5f-06 oinit.bboot=PARTUUID=0a6c1e5f-07 rauc.slot=${oi_slot}"; load ${devtype} ${devnum}:${oi_part} 0x12000000 vmlinuz && load ${devtype} ${devnum}:${oi_part} 0x18200000 board.dtb && load ${devtype} ${devnum}:${oi_part} 0x18400000 initrd.img && bootz 0x12000000 0x18400000:${filesize} 0x18200000'
