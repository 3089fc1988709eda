SUMMARY = "An initramfs whose /init is overlay-init"
DESCRIPTION = "overlay-init as /init, the board's overlay-init.conf and the kernel modules it \
names. Use it as the kernel's initramfs: INITRAMFS_IMAGE = \"overlay-init-initramfs\" (and \
INITRAMFS_IMAGE_BUNDLE = \"1\" to build it into the kernel image)."
LICENSE = "MIT"

# The board's settings: a folder of the overlay-init checkout's board/ (imx8, imx6, ...) or any
# overlay-init.conf. Machine-independent: set one in local.conf or in the machine's conf.
OVERLAY_INIT_BOARD ??= ""
OVERLAY_INIT_CONF ??= "${@'${OVERLAY_INIT_TOPDIR}/board/${OVERLAY_INIT_BOARD}/overlay-init.conf' if d.getVar('OVERLAY_INIT_BOARD') else ''}"

PACKAGE_INSTALL = "overlay-init-initramfs"
IMAGE_FEATURES = ""
IMAGE_LINGUAS = ""
NO_RECOMMENDATIONS = "1"
# Modules come as kernel-module-* packages; the kernel image stays out of the initramfs.
PACKAGE_EXCLUDE = "kernel-image-*"
IMAGE_FSTYPES = "${INITRAMFS_FSTYPES}"
IMAGE_NAME_SUFFIX ?= ""
IMAGE_ROOTFS_SIZE = "8192"
IMAGE_ROOTFS_EXTRA_SPACE = "0"

inherit image

python __anonymous() {
    conf = d.getVar('OVERLAY_INIT_CONF')
    if not conf:
        raise bb.parse.SkipRecipe('no board settings: set OVERLAY_INIT_BOARD = "imx8" (a folder of '
                                  'the checkout\'s board/) or OVERLAY_INIT_CONF = "/path/to/overlay-init.conf" '
                                  'in local.conf or the machine configuration')
    if not os.path.isfile(conf):
        raise bb.parse.SkipRecipe('OVERLAY_INIT_CONF %s: no such file' % conf)
    # The modules oinit.modules names, as OE packages them (kernel-module-NAME with dashes);
    # NAME? is wanted only if the kernel has it. Built-in drivers have no package: list only
    # modules (docs/yocto.md).
    want, optional = [], []
    with open(conf) as f:
        for line in f:
            line = line.strip()
            if line.startswith('oinit.modules='):
                want, optional = [], []
                for m in filter(None, line[len('oinit.modules='):].split(',')):
                    name = 'kernel-module-' + m.rstrip('?').replace('_', '-').lower()
                    (optional if m.endswith('?') else want).append(name)
    d.appendVar('PACKAGE_INSTALL', ' ' + ' '.join(want))
    d.appendVar('PACKAGE_INSTALL_ATTEMPTONLY', ' ' + ' '.join(optional))
    d.appendVarFlag('do_rootfs', 'file-checksums', ' %s:True' % conf)
}

# The board's settings where the init reads them.
install_overlay_init_conf() {
    install -D -m 0644 ${OVERLAY_INIT_CONF} ${IMAGE_ROOTFS}${sysconfdir}/overlay-init.conf
}
ROOTFS_POSTPROCESS_COMMAND += "install_overlay_init_conf"
