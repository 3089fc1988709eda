# The i.MX 8M Plus EVK's part of boot.scr, compiled ahead of board/integration/uboot/boot.cmd
# into one script (cargo xtask's disk, Buildroot's post-image.sh) on the FAT partition 1, where
# U-Boot's boot flow (bootflow scan, or distro_bootcmd on older vendor U-Boots) finds it and
# sets devtype and devnum for the device it came from.
#
# The selection (BOOT_ORDER, BOOT_x_LEFT) lives in U-Boot's own environment on the eMMC user
# area, which Linux reaches through board/imx8/fw_env.config: no oi_state_if, saveenv.
#
# oi_load boots the chosen slot from its boot partition (GPT partition 5: boot_a, 6: boot_b;
# cargo xtask check-boards checks the numbers, names and files against genimage.cfg): the
# kernel Image (a gzip-compressed one also boots: booti unpacks it through kernel_comp_addr_r),
# the device tree and the initramfs, all copied there from the slot's root image by
# `overlay-init install`. RAM from 0x40000000: the kernel at U-Boot's load address, which booti
# moves to 0x40600000 (Debian's 6.12 Image then ends near 0x43100000); the device tree, the
# initramfs and the unpacking area above it. The command line is the board's
# (board/imx8/cmdline) plus U-Boot A/B mode.
setenv kernel_comp_addr_r 0x60000000
setenv oi_load 'setenv oi_part 6; test "${oi_slot}" = A && setenv oi_part 5; setenv bootargs "console=ttymxc1,115200 quiet rootwait oinit.bootloader=uboot oinit.aboot=PARTLABEL=boot_a oinit.bboot=PARTLABEL=boot_b rauc.slot=${oi_slot}"; load ${devtype} ${devnum}:${oi_part} 0x40480000 vmlinuz && setenv kernel_comp_size ${filesize} && load ${devtype} ${devnum}:${oi_part} 0x50000000 board.dtb && load ${devtype} ${devnum}:${oi_part} 0x50100000 initrd.img && booti 0x40480000 0x50100000:${filesize} 0x50000000'
