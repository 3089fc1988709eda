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
# Where the selection is kept: in U-Boot's own environment (saveenv), unless the board defines
# oi_state_load and oi_state_save (a board whose Linux cannot reach U-Boot's environment keeps
# the three variables in an area both can: the commands import and export it, docs/uboot.md).
# Build: mkimage -A arm -T script -C none -d boot.cmd boot.scr

test -n "${oi_state_save}" || setenv oi_state_save saveenv
if test -n "${oi_state_load}"; then
	run oi_state_load
fi

test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

setenv oi_slot
for s in ${BOOT_ORDER}; do
	if test -z "${oi_slot}" && test "${s}" = "A" && test ${BOOT_A_LEFT} -gt 0; then
		setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
		setenv oi_slot A
	fi
	if test -z "${oi_slot}" && test "${s}" = "B" && test ${BOOT_B_LEFT} -gt 0; then
		setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
		setenv oi_slot B
	fi
done

if test -z "${oi_slot}"; then
	echo "overlay-init: no slot in BOOT_ORDER (${BOOT_ORDER}) has tries left: both get 3 again"
	setenv BOOT_A_LEFT 3
	setenv BOOT_B_LEFT 3
	run oi_state_save
	reset
fi

# The try is spent before the kernel starts: a slot that hangs or resets still used it.
run oi_state_save
echo "overlay-init: U-Boot chose slot ${oi_slot} (BOOT_ORDER ${BOOT_ORDER}, A ${BOOT_A_LEFT} left, B ${BOOT_B_LEFT} left)"
if test -n "${oi_load}"; then
	run oi_load
fi
