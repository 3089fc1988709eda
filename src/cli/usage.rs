//! The usage text every command prints on a wrong argument.

pub const USAGE: &str = "usage: overlay-init COMMAND
  plan [--cmdline TEXT] [--config FILE] [--sysfs DIR] [--dev DIR] [--state FILE]
      prints the devices, mounts and fallbacks the boot would use, without acting; with
      --state (an A/B state record), the whole A/B boot: slot choice, state writes, factory
      reset, new-image uppers, and the plans taking over when a step fails
  status [--json]           booted slot, each slot's state, boot history and report
  mark-good [SLOT]          the booted (or named) slot works: end its trial
  mark-bad [SLOT]           never boot it again until reinstalled; the other slot boots next
  rollback                  boot the other slot next time
  factory-reset [--reboot]  wipe every upper at the next boot (keep-list kept)
  install IMAGE [--slot a|b] [--sha256 HEX] [--key PUBKEY] [--force]
                            write a squashfs image into the slot not booted, verify it, and
                            make it the next boot's trial slot (--force: even over the last
                            good slot while the booted one is still on trial). A board that
                            verifies its lowers takes only images signed with its key
                            (--key, default /run/overlay-init/verity.pub)
  reconcile --old IMAGE|DIR --new IMAGE|DIR --upper DIR [--config FILE] [--keep FILE]
            [--conflict user|image] [--json]
                            what a new image would do to that upper (oinit.carry=reconcile),
                            changing nothing; images are mounted read-only (needs root)
  rauc REQUEST...           RAUC custom bootloader backend (also as argv[0] overlay-init-rauc)
  (slot commands take --state FILE to name the state record; default from /run/overlay-init/slots)
plan options:
  --cmdline  kernel command line (default: /proc/cmdline)
  --config   board config (default: /etc/overlay-init.conf)
  --sysfs    sysfs root to scan for block devices (default: /sys)
  --dev      directory of device nodes to probe (default: /dev)
overlay-init --version";
