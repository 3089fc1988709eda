//! RAUC's U-Boot boot selection (rauc `src/bootloaders/uboot.c`), over the environment's
//! variables: `BOOT_ORDER` lists the slots to try ("A B"), `BOOT_A_LEFT`/`BOOT_B_LEFT` their tries
//! left (hex, as RAUC writes them). The slot U-Boot boots next is the first in the order with
//! tries left; marking good gives a slot its tries back, marking bad takes it out of the order
//! with none left, making it primary puts it first with fresh tries. A missing variable has
//! RAUC's default; a value neither overlay-init nor RAUC could read is refused by name, before
//! anything is written.

use crate::ab::state::SlotId;
use crate::rt::prelude::*;
use crate::uboot::env::Vars;

/// RAUC's `boot-attempts` and `boot-attempts-primary` default, and the boot script's.
pub const TRIES: u32 = 3;
pub const ORDER: &str = "BOOT_ORDER";

/// The slots' names in U-Boot's variables: `A`, `B`.
pub fn bootname(s: SlotId) -> &'static str {
    match s {
        SlotId::A => "A",
        SlotId::B => "B",
    }
}

fn left_var(s: SlotId) -> String {
    format!("BOOT_{}_LEFT", bootname(s))
}

/// The boot selection as read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chooser {
    pub order: Vec<SlotId>,
    pub left: [u32; 2],
}

impl Chooser {
    /// Reads the variables; missing ones take the boot script's defaults ("A B", 3 tries).
    pub fn read(vars: &Vars) -> Result<Chooser, String> {
        let mut order = Vec::new();
        let text = vars.get(ORDER).map_or("A B", String::as_str);
        for word in text.split_whitespace() {
            let slot = match word {
                "A" => SlotId::A,
                "B" => SlotId::B,
                _ => return Err(format!("{ORDER}={text:?} names slot {word:?}: this system has slots A and B")),
            };
            if order.contains(&slot) {
                return Err(format!("{ORDER}={text:?} names slot {word} twice"));
            }
            order.push(slot);
        }
        let mut left = [TRIES; 2];
        for s in [SlotId::A, SlotId::B] {
            if let Some(v) = vars.get(&left_var(s)) {
                left[s.index()] = u32::from_str_radix(v.trim(), 16)
                    .map_err(|_| format!("{}={v:?} is not a number of tries (hex, as RAUC writes it)", left_var(s)))?;
            }
        }
        Ok(Chooser { order, left })
    }

    /// The slot U-Boot boots next: the first in the order with tries left. None: the script
    /// gives both slots their tries back and resets.
    pub fn next(&self) -> Option<SlotId> {
        self.order.iter().copied().find(|s| self.left[s.index()] > 0)
    }

    /// RAUC's "good": in the order with tries left.
    pub fn good(&self, s: SlotId) -> bool {
        self.order.contains(&s) && self.left[s.index()] > 0
    }

    fn write(&self, vars: &mut Vars) {
        let order: Vec<&str> = self.order.iter().map(|s| bootname(*s)).collect();
        vars.insert(ORDER.into(), order.join(" "));
        for s in [SlotId::A, SlotId::B] {
            vars.insert(left_var(s), format!("{:x}", self.left[s.index()]));
        }
    }
}

/// What a userspace command or the boot asks of the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Its tries back (RAUC's mark-good).
    Good(SlotId),
    /// Out of the order, no tries (RAUC's mark-bad).
    Bad(SlotId),
    /// First in the order with fresh tries (RAUC's set-primary: an install, a rollback).
    Primary(SlotId),
}

/// Applies `change` to `vars` (all of the selection's variables written, as one environment
/// write); refused, with `vars` untouched, when the selection cannot be read.
pub fn apply(vars: &mut Vars, change: Change) -> Result<Chooser, String> {
    let mut c = Chooser::read(vars)?;
    match change {
        Change::Good(s) => c.left[s.index()] = TRIES,
        Change::Bad(s) => {
            c.order.retain(|o| *o != s);
            c.left[s.index()] = 0;
        }
        Change::Primary(s) => {
            c.order.retain(|o| *o != s);
            c.order.insert(0, s);
            c.left[s.index()] = TRIES;
        }
    }
    c.write(vars);
    Ok(c)
}

/// One line for `status` and the boot log: what U-Boot boots next and each slot's tries.
pub fn describe(c: &Chooser) -> String {
    let order: Vec<&str> = c.order.iter().map(|s| bootname(*s)).collect();
    let next = c.next().map_or_else(
        || "no slot has tries left: U-Boot gives both theirs back".into(),
        |s| format!("slot {} ({} tries left)", bootname(s), c.left[s.index()]),
    );
    format!("U-Boot boots next: {next}; BOOT_ORDER \"{}\", A {} left, B {} left", order.join(" "), c.left[0], c.left[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reads_as_the_boot_script_chooses() {
        let c = Chooser::read(&Vars::new()).unwrap();
        assert_eq!((c.order.clone(), c.left, c.next()), (vec![SlotId::A, SlotId::B], [3, 3], Some(SlotId::A)));
        let c = Chooser::read(&vars(&[("BOOT_ORDER", "B A"), ("BOOT_B_LEFT", "0"), ("BOOT_A_LEFT", "a")])).unwrap();
        assert_eq!((c.left, c.next()), ([10, 0], Some(SlotId::A)));
        assert!(!c.good(SlotId::B));
        let c = Chooser::read(&vars(&[("BOOT_ORDER", "A"), ("BOOT_A_LEFT", "0")])).unwrap();
        assert_eq!(c.next(), None);
        assert!(!c.good(SlotId::B), "B is not in the order");
        assert!(describe(&c).contains("no slot has tries left"));
    }

    #[test]
    fn refuses_what_it_cannot_read_and_writes_nothing() {
        for (bad, why) in [
            (vars(&[("BOOT_ORDER", "A C")]), "BOOT_ORDER=\"A C\" names slot \"C\""),
            (vars(&[("BOOT_ORDER", "A A")]), "names slot A twice"),
            (vars(&[("BOOT_B_LEFT", "three")]), "BOOT_B_LEFT=\"three\" is not a number"),
            (vars(&[("BOOT_A_LEFT", "-1")]), "BOOT_A_LEFT=\"-1\""),
        ] {
            let mut v = bad.clone();
            assert!(apply(&mut v, Change::Good(SlotId::A)).unwrap_err().contains(why), "{bad:?}");
            assert_eq!(v, bad, "nothing changed");
        }
    }

    #[test]
    fn changes_as_raucs_backend() {
        let mut v = vars(&[("BOOT_ORDER", "A B"), ("BOOT_A_LEFT", "1"), ("BOOT_B_LEFT", "3"), ("bootcmd", "x")]);
        // An install into B: B first with fresh tries.
        let c = apply(&mut v, Change::Primary(SlotId::B)).unwrap();
        assert_eq!((v.get("BOOT_ORDER").unwrap().as_str(), c.next()), ("B A", Some(SlotId::B)));
        // B's init fails: out of the order; A boots next.
        let c = apply(&mut v, Change::Bad(SlotId::B)).unwrap();
        assert_eq!(
            (v.get("BOOT_ORDER").unwrap().as_str(), v.get("BOOT_B_LEFT").unwrap().as_str(), c.next()),
            ("A", "0", Some(SlotId::A))
        );
        // A marked good: its tries back, as RAUC writes them (hex).
        v.insert("BOOT_A_LEFT".into(), "0".into());
        apply(&mut v, Change::Good(SlotId::A)).unwrap();
        assert_eq!(v.get("BOOT_A_LEFT").unwrap(), "3");
        assert_eq!(v.get("bootcmd").unwrap(), "x", "other variables are kept");
        // Rolled back to B: back in the order, first.
        let c = apply(&mut v, Change::Primary(SlotId::B)).unwrap();
        assert_eq!((v.get("BOOT_ORDER").unwrap().as_str(), c.next()), ("B A", Some(SlotId::B)));
    }
}
