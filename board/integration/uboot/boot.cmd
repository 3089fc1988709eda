# U-Boot boot script: chooses the slot and counts the try with RAUC's variables and semantics
# (rauc.readthedocs.io, "U-Boot"), so that RAUC's bootloader=uboot backend and overlay-init
# read and write the same state:
#   BOOT_ORDER   the slots in the order to try, "A B" (the first one with tries left boots)
#   BOOT_A_LEFT  tries left for slot A (BOOT_B_LEFT for B); each boot of a slot spends one,
#                marking it good sets them back, marking it bad sets 0
# Missing variables get RAUC's defaults. When no slot has tries left, both get theirs back and
# the board resets (RAUC's behaviour: better a retried slot than no boot at all).
# The chosen slot is in oi_slot; then `run oi_load`, the board's own command that loads and
# boots that slot's kernel, device tree and initramfs (with rauc.slot=${oi_slot} in bootargs).
#
# Where the selection is kept: in U-Boot's own environment (saveenv), unless the board sets
# oi_state_if. A board whose Linux cannot reach U-Boot's environment keeps the three variables
# in a selection area of its own: two copies in U-Boot's redundant environment format (CRC32,
# flags byte, data), where its fw_env.config says, so that overlay-init and fw_printenv read and
# write it as any redundant environment. The board sets:
#   oi_state_if    the block interface (virtio, mmc); oi_state_dev its device, if not current
#   oi_state_blk1  the first copy's block (512 bytes), oi_state_blk2 the second's
#   oi_state_cnt   blocks per copy; oi_state_size the copy's size in bytes (hex)
#   oi_state_addr  RAM for three copies and 4 bytes
# This script reads both copies and keeps the current one by U-Boot's rule (the only valid one,
# or of two the newer flags byte), and writes the other with the next flags byte, so that a
# write cut by a power loss leaves the current copy as it was. That needs setexpr; a U-Boot
# built without it (Debian's qemu-x86_64) keeps one copy: the board sets no oi_state_blk2, and
# the copy (CRC32 and data, U-Boot's single format) is written in place.
# Build: mkimage -A arm -T script -C none -d boot.cmd boot.scr

if test -n "${oi_state_if}"; then
	if test -n "${oi_state_dev}"; then
		${oi_state_if} dev ${oi_state_dev}
	fi
fi
if test -n "${oi_state_if}" && test -z "${oi_state_blk2}"; then
	${oi_state_if} read ${oi_state_addr} ${oi_state_blk1} ${oi_state_cnt}
	env import -c ${oi_state_addr} ${oi_state_size} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT || echo "overlay-init: no valid selection area, so the defaults"
fi
if test -n "${oi_state_blk2}"; then
	# Copy 1 at a, copy 2 at b, the copy to write at w, 4 bytes of scratch at t.
	setexpr oi_b ${oi_state_addr} + ${oi_state_size}
	setexpr oi_w ${oi_b} + ${oi_state_size}
	setexpr oi_t ${oi_w} + ${oi_state_size}
	setexpr oi_sz1 ${oi_state_size} - 1
	${oi_state_if} read ${oi_state_addr} ${oi_state_blk1} ${oi_state_cnt}
	${oi_state_if} read ${oi_b} ${oi_state_blk2} ${oi_state_cnt}
	setexpr oi_fa ${oi_state_addr} + 4
	setexpr oi_fb ${oi_b} + 4
	setexpr.b oi_f1 *${oi_fa}
	setexpr.b oi_f2 *${oi_fb}
	# The newer copy by its flags byte (0 follows 255).
	setenv oi_new 1
	if itest.b *${oi_fb} -gt *${oi_fa}; then
		setenv oi_new 2
	fi
	if itest.b *${oi_fa} == ff && itest.b *${oi_fb} == 0; then
		setenv oi_new 2
	fi
	if itest.b *${oi_fb} == ff && itest.b *${oi_fa} == 0; then
		setenv oi_new 1
	fi
	# `env import -c` checks a CRC32 over what follows it: moved one byte on, over the flags
	# byte, it covers exactly the redundant copy's data. The older copy is imported first, the
	# newer over it: each import happens only when its CRC is right.
	setexpr oi_a1 ${oi_state_addr} + 1
	setexpr oi_b1 ${oi_b} + 1
	cp.b ${oi_state_addr} ${oi_t} 4
	cp.b ${oi_t} ${oi_a1} 4
	cp.b ${oi_b} ${oi_t} 4
	cp.b ${oi_t} ${oi_b1} 4
	setenv oi_cur
	if test "${oi_new}" = 2; then
		env import -c ${oi_a1} ${oi_sz1} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT && setenv oi_cur 1
		env import -c ${oi_b1} ${oi_sz1} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT && setenv oi_cur 2
	else
		env import -c ${oi_b1} ${oi_sz1} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT && setenv oi_cur 2
		env import -c ${oi_a1} ${oi_sz1} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT && setenv oi_cur 1
	fi
	if test -z "${oi_cur}"; then
		echo "overlay-init: no valid copy of the selection area, so the defaults"
	fi
fi

test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

# oi_n minus one: setexpr, or where U-Boot has none, the counts RAUC writes (up to 9) by test.
setenv oi_dec 'if setexpr oi_n ${oi_n} - 1; then true; else setenv oi_p 0; for i in 1 2 3 4 5 6 7 8 9; do if test "${oi_n}" = "${i}"; then setenv oi_n ${oi_p}; fi; setenv oi_p ${i}; done; fi'

setenv oi_slot
for s in ${BOOT_ORDER}; do
	if test -z "${oi_slot}" && test "${s}" = "A" && test ${BOOT_A_LEFT} -gt 0; then
		setenv oi_n ${BOOT_A_LEFT}
		run oi_dec
		setenv BOOT_A_LEFT ${oi_n}
		setenv oi_slot A
	fi
	if test -z "${oi_slot}" && test "${s}" = "B" && test ${BOOT_B_LEFT} -gt 0; then
		setenv oi_n ${BOOT_B_LEFT}
		run oi_dec
		setenv BOOT_B_LEFT ${oi_n}
		setenv oi_slot B
	fi
done

if test -z "${oi_slot}"; then
	echo "overlay-init: no slot in BOOT_ORDER (${BOOT_ORDER}) has tries left: both get 3 again"
	setenv BOOT_A_LEFT 3
	setenv BOOT_B_LEFT 3
fi

# The try is spent before the kernel starts: a slot that hangs or resets still used it.
if test -z "${oi_state_if}"; then
	saveenv
elif test -z "${oi_state_blk2}"; then
	env export -c -s ${oi_state_size} ${oi_state_addr} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
	${oi_state_if} write ${oi_state_addr} ${oi_state_blk1} ${oi_state_cnt}
else
	# The copy that is not current, with the current flags byte + 1 (255 + 1 is 0).
	setenv oi_f 0
	setenv oi_blk ${oi_state_blk1}
	if test "${oi_cur}" = 1; then
		setenv oi_f ${oi_f1}
		setenv oi_blk ${oi_state_blk2}
	fi
	if test "${oi_cur}" = 2; then
		setenv oi_f ${oi_f2}
	fi
	setexpr oi_f ${oi_f} + 1
	if test "${oi_f}" = 100; then
		setenv oi_f 0
	fi
	# Exported one byte on (its CRC then covers the data after the flags byte), the CRC moved
	# back to the start and the flags byte put after it: U-Boot's redundant layout.
	setexpr oi_w1 ${oi_w} + 1
	setexpr oi_w4 ${oi_w} + 4
	env export -c -s ${oi_sz1} ${oi_w1} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT
	cp.b ${oi_w1} ${oi_t} 4
	cp.b ${oi_t} ${oi_w} 4
	mw.b ${oi_w4} ${oi_f}
	${oi_state_if} write ${oi_w} ${oi_blk} ${oi_state_cnt}
fi
if test -z "${oi_slot}"; then
	reset
fi
echo "overlay-init: U-Boot chose slot ${oi_slot} (BOOT_ORDER ${BOOT_ORDER}, A ${BOOT_A_LEFT} left, B ${BOOT_B_LEFT} left)"
if test -n "${oi_load}"; then
	run oi_load
fi
