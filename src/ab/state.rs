//! The A/B slot state record: a small typed value, changed in memory by methods that do not
//! write, encoded into fixed 512-byte blocks with a CRC32 and a generation counter. Two copies
//! live in their own 4 KiB blocks of a preallocated file (the U-Boot redundant-environment
//! pattern): the newer valid copy wins, and a write always goes to the older one, so a power cut
//! during a write leaves the previous state readable. `store` does the I/O.

use crate::rt::prelude::*;
use crate::util::crc32::crc32;
use core::fmt;

pub const BLOCK: usize = 512;
/// Each copy starts on its own filesystem block, so a torn write can only hit one copy.
pub const COPY_STRIDE: u64 = 4096;
pub const FILE_LEN: u64 = 2 * COPY_STRIDE;
const MAGIC: &[u8; 8] = b"OISTATE1";
pub const HISTORY: usize = 8;
/// The identity recorded when an image is installed and not yet booted: never a real CRC the
/// boot compares equal to in practice, and not 0 (unknown, which keeps the upper).
pub const IMAGE_INSTALLED: u32 = 1;
/// What identifies an image: the dm-verity root hash where the board verifies its lowers, else
/// the SHA-256 of the image's bytes as written. All zero: not known (a factory-flashed slot, a
/// record from before digests, an image written behind the init's back).
pub type Digest = [u8; 32];
pub const DIGEST_UNKNOWN: Digest = [0; 32];
const DIGESTS: usize = 128;
const FLOOR: usize = 192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotId {
    A,
    B,
}

impl SlotId {
    pub fn other(self) -> SlotId {
        match self {
            SlotId::A => SlotId::B,
            SlotId::B => SlotId::A,
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn name(self) -> &'static str {
        match self {
            SlotId::A => "a",
            SlotId::B => "b",
        }
    }
    pub fn parse(s: &str) -> Option<SlotId> {
        match s {
            "a" | "A" => Some(SlotId::A),
            "b" | "B" => Some(SlotId::B),
            _ => None,
        }
    }
    fn from_byte(b: u8) -> Option<SlotId> {
        [SlotId::A, SlotId::B].get(usize::from(b)).copied()
    }
}

/// Why a boot went the way it did, kept in the history for field diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Good = 1,
    Trial = 2,
    RolledBack = 3,
    BothBad = 4,
    LowerFailed = 5,
    Uncounted = 6,
    FactoryReset = 7,
    NewImage = 8,
    MarkedGood = 9,
    OnlyImage = 10,
    /// U-Boot's boot script chose the slot and counted the try (`oinit.bootloader=uboot`).
    Bootloader = 11,
}

impl Reason {
    fn from_byte(b: u8) -> Option<Reason> {
        use Reason::*;
        [
            Good,
            Trial,
            RolledBack,
            BothBad,
            LowerFailed,
            Uncounted,
            FactoryReset,
            NewImage,
            MarkedGood,
            OnlyImage,
            Bootloader,
        ]
        .into_iter()
        .find(|r| *r as u8 == b)
    }
    /// The stable name a program matches (`status --json`).
    pub fn code(self) -> &'static str {
        match self {
            Reason::Good => "good",
            Reason::MarkedGood => "marked-good",
            Reason::Trial => "trial",
            Reason::RolledBack => "rolled-back",
            Reason::BothBad => "both-bad",
            Reason::LowerFailed => "lower-failed",
            Reason::Uncounted => "uncounted",
            Reason::FactoryReset => "factory-reset",
            Reason::NewImage => "new-image",
            Reason::OnlyImage => "only-image",
            Reason::Bootloader => "bootloader",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Reason::Good => "good slot",
            Reason::MarkedGood => "marked good",
            Reason::Trial => "trial boot",
            Reason::RolledBack => "rolled back: the other slot used up its tries",
            Reason::BothBad => "both slots bad: booting the last good one anyway",
            Reason::LowerFailed => "the other slot's image could not be mounted",
            Reason::Uncounted => "state write failed: booting the last good slot",
            Reason::FactoryReset => "factory reset",
            Reason::NewImage => "new image: upper carried by oinit.carry",
            Reason::OnlyImage => "the only image (no second slot)",
            Reason::Bootloader => "chosen by U-Boot (BOOT_ORDER, BOOT_x_LEFT)",
        }
    }
}

/// How a slot's last boot ended, as far as the record knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    #[default]
    Never = 0,
    /// Booted, not (yet) marked good: a hang or power cut before mark-good leaves it so.
    Unconfirmed = 1,
    Good = 2,
    /// Rolled back from, marked bad, or its image could not be mounted.
    Failed = 3,
}

impl Outcome {
    fn from_byte(b: u8) -> Option<Outcome> {
        [Outcome::Never, Outcome::Unconfirmed, Outcome::Good, Outcome::Failed].get(usize::from(b)).copied()
    }
    /// The stable name a program matches (`status --json`).
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Never => "never",
            Outcome::Unconfirmed => "unconfirmed",
            Outcome::Good => "good",
            Outcome::Failed => "failed",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Outcome::Never => "never booted",
            Outcome::Unconfirmed => "not confirmed",
            Outcome::Good => "marked good",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Slot {
    pub tries: u8,
    pub good: bool,
    pub bad: bool,
    /// The superblock fingerprint (CRC32) of the image this slot's upper was made for: what the
    /// boot reads cheaply to notice an image changed. Two builds can share a superblock, so it
    /// is a change detector, not an identity.
    pub image: u32,
    /// The identity of the image its writer (`install`, RAUC's `set-primary`) put in the slot.
    pub digest: Digest,
    pub last: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub boot: u32,
    pub slot: SlotId,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub generation: u64,
    pub active: SlotId,
    pub slots: [Slot; 2],
    pub boots: u32,
    /// Boots since the last mark-good: the quick-power-cycle reset trigger counts these.
    pub unconfirmed_boots: u8,
    pub reset_requested: bool,
    pub reset_attempts: u8,
    /// The boot that started the pending factory reset: names its trash, so an interrupted reset
    /// carries the keep-list from the original uppers, not from a half-made new one.
    pub reset_boot: u32,
    /// The slot booted last, whose upper a new image's keep-list is carried from.
    pub last_booted: Option<SlotId>,
    /// The slot most recently marked good: where the device goes when nothing else can boot.
    pub last_good: Option<SlotId>,
    /// The lowest security version a signed image may have: the highest that was marked good
    /// (anti-rollback). Lowered only by a downgrade token signed with the board's key.
    pub security_floor: u32,
    pub history: Vec<Event>,
}

impl State {
    /// The documented default when no valid copy exists: slot a, considered good (it is the
    /// factory image), so a device with a lost state record always boots.
    pub fn factory(tries: u8) -> State {
        let good = Slot { tries, good: true, bad: false, image: 0, digest: DIGEST_UNKNOWN, last: Outcome::Never };
        State {
            generation: 0,
            active: SlotId::A,
            slots: [good, Slot { tries, ..Slot::default() }],
            boots: 0,
            unconfirmed_boots: 0,
            reset_requested: false,
            reset_attempts: 0,
            reset_boot: 0,
            last_booted: None,
            last_good: Some(SlotId::A),
            security_floor: 0,
            history: Vec::new(),
        }
    }

    pub fn slot(&self, s: SlotId) -> &Slot {
        &self.slots[s.index()]
    }
    pub fn slot_mut(&mut self, s: SlotId) -> &mut Slot {
        &mut self.slots[s.index()]
    }

    pub fn record(&mut self, slot: SlotId, reason: Reason) {
        if self.history.len() == HISTORY {
            self.history.remove(0);
        }
        self.history.push(Event { boot: self.boots, slot, reason });
    }

    pub fn encode(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[0..8].copy_from_slice(MAGIC);
        b[8..16].copy_from_slice(&self.generation.to_le_bytes());
        b[16] = self.active as u8;
        b[17] = self.last_booted.map_or(0xff, |s| s as u8);
        b[18] = self.unconfirmed_boots;
        b[19] = u8::from(self.reset_requested);
        b[20] = self.reset_attempts;
        b[21] = self.history.len() as u8;
        b[22] = self.last_good.map_or(0xff, |s| s as u8);
        b[24..28].copy_from_slice(&self.boots.to_le_bytes());
        b[28..32].copy_from_slice(&self.reset_boot.to_le_bytes());
        for (i, s) in self.slots.iter().enumerate() {
            let o = 32 + i * 8;
            b[o] = s.tries;
            b[o + 1] = u8::from(s.good) | u8::from(s.bad) << 1;
            b[o + 2] = s.last as u8;
            b[o + 4..o + 8].copy_from_slice(&s.image.to_le_bytes());
            b[DIGESTS + i * 32..DIGESTS + (i + 1) * 32].copy_from_slice(&s.digest);
        }
        for (i, e) in self.history.iter().enumerate() {
            let o = 64 + i * 8;
            b[o..o + 4].copy_from_slice(&e.boot.to_le_bytes());
            b[o + 4] = e.slot as u8;
            b[o + 5] = e.reason as u8;
        }
        b[FLOOR..FLOOR + 4].copy_from_slice(&self.security_floor.to_le_bytes());
        let crc = crc32(&b[..BLOCK - 4]);
        b[BLOCK - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes one copy; None for anything not written whole by `encode`.
    pub fn decode(b: &[u8]) -> Option<State> {
        let b = b.get(..BLOCK)?;
        if &b[0..8] != MAGIC || crc32(&b[..BLOCK - 4]).to_le_bytes() != b[BLOCK - 4..] {
            return None;
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut gen = [0u8; 8];
        gen.copy_from_slice(&b[8..16]);
        let slot = |i: usize| {
            let o = 32 + i * 8;
            let mut digest = DIGEST_UNKNOWN;
            // Records written before digests have zeros here: unknown.
            digest.copy_from_slice(&b[DIGESTS + i * 32..DIGESTS + (i + 1) * 32]);
            Some(Slot {
                digest,
                tries: b[o],
                good: b[o + 1] & 1 != 0,
                bad: b[o + 1] & 2 != 0,
                image: u32_at(o + 4),
                last: Outcome::from_byte(b[o + 2])?,
            })
        };
        let n = usize::from(b[21]).min(HISTORY);
        let history = (0..n)
            .map(|i| {
                let o = 64 + i * 8;
                Some(Event {
                    boot: u32_at(o),
                    slot: SlotId::from_byte(b[o + 4])?,
                    reason: Reason::from_byte(b[o + 5])?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(State {
            generation: u64::from_le_bytes(gen),
            active: SlotId::from_byte(b[16])?,
            last_booted: SlotId::from_byte(b[17]),
            last_good: SlotId::from_byte(b[22]),
            unconfirmed_boots: b[18],
            reset_requested: b[19] != 0,
            reset_attempts: b[20],
            boots: u32_at(24),
            reset_boot: u32_at(28),
            // Zero in records from before anti-rollback: no floor yet.
            security_floor: u32_at(FLOOR),
            slots: [slot(0)?, slot(1)?],
            history,
        })
    }
}

/// The digest as hex, None when unknown.
pub fn digest_text(d: &Digest) -> Option<String> {
    (*d != DIGEST_UNKNOWN).then(|| crate::util::hex::hex(d))
}

/// Whether generation `a` is newer than `b` in serial-number arithmetic (RFC 1982): the two
/// copies are always one write apart, so a generation that wrapped from `u64::MAX` to 0 is still
/// the newer one.
pub fn newer(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) > 0
}

/// Of the two copies, the newer valid one, and which copy index it came from.
pub fn pick(copies: [&[u8]; 2]) -> Option<(State, usize)> {
    let a = State::decode(copies[0]).map(|s| (s, 0));
    let b = State::decode(copies[1]).map(|s| (s, 1));
    match (a, b) {
        (Some(x), Some(y)) => Some(if newer(y.0.generation, x.0.generation) { y } else { x }),
        (x, y) => x.or(y),
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "active slot: {} (state generation {}, boot {})", self.active.name(), self.generation, self.boots)?;
        for s in [SlotId::A, SlotId::B] {
            let v = self.slot(s);
            let status = match (v.good, v.bad, v.last) {
                (_, true, _) => "bad",
                (true, false, _) => "good",
                // Installed (or factory-fresh) and waiting for its first boot.
                (false, false, Outcome::Never) => "not booted yet",
                (false, false, _) => "on trial",
            };
            writeln!(
                f,
                "slot {}: {status}, {} tries left, image {:08x}{}, last boot {}",
                s.name(),
                v.tries,
                v.image,
                digest_text(&v.digest).map(|d| format!(" (digest {d})")).unwrap_or_default(),
                v.last.text()
            )?;
        }
        if self.reset_requested {
            writeln!(f, "factory reset requested for the next boot")?;
        }
        if self.security_floor > 0 {
            writeln!(f, "signed images below security version {} are refused", self.security_floor)?;
        }
        for e in &self.history {
            writeln!(f, "boot {}: slot {}: {}", e.boot, e.slot.name(), e.reason.text())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut s = State::factory(3);
        s.generation = 41;
        s.active = SlotId::B;
        s.slots[1] = Slot {
            tries: 2,
            good: false,
            bad: false,
            image: 0xdead_beef,
            digest: [0xab; 32],
            last: Outcome::Unconfirmed,
        };
        s.boots = 7;
        s.reset_requested = true;
        s.last_booted = Some(SlotId::A);
        for i in 0..10 {
            s.boots = i;
            s.record(SlotId::B, Reason::Trial);
        }
        s
    }

    #[test]
    fn crc_matches_zlib() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn round_trip_and_history_is_bounded() {
        let s = sample();
        assert_eq!(s.history.len(), HISTORY);
        assert_eq!(s.history[0].boot, 2);
        assert_eq!(State::decode(&s.encode()), Some(s));
    }

    /// A record written before slots carried digests (zeros where they are now) still decodes,
    /// with every digest unknown.
    #[test]
    fn a_record_from_before_digests_has_unknown_digests() {
        let mut b = sample().encode();
        b[DIGESTS..DIGESTS + 64].fill(0);
        let crc = crc32(&b[..BLOCK - 4]);
        b[BLOCK - 4..].copy_from_slice(&crc.to_le_bytes());
        let s = State::decode(&b).expect("an older record is refused");
        assert_eq!((s.slot(SlotId::B).digest, s.slot(SlotId::B).image), (DIGEST_UNKNOWN, 0xdead_beef));
        assert_eq!(s.history, sample().history);
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let good = sample().encode();
        for byte in 0..BLOCK {
            for bit in 0..8 {
                let mut b = good;
                b[byte] ^= 1 << bit;
                assert_eq!(State::decode(&b), None, "flip at byte {byte} bit {bit} accepted");
            }
        }
    }

    #[test]
    fn torn_and_empty_copies_are_rejected() {
        let good = sample().encode();
        for cut in [0, 1, 8, 100, 256, 511] {
            let mut torn = [0u8; BLOCK];
            torn[..cut].copy_from_slice(&good[..cut]);
            assert_eq!(State::decode(&torn), None, "torn at {cut}");
        }
        assert_eq!(State::decode(&[0xff; BLOCK]), None);
        assert_eq!(State::decode(&good[..100]), None);
    }

    #[test]
    fn newer_valid_copy_wins() {
        let mut old = sample();
        old.generation = 5;
        let mut new = old.clone();
        new.generation = 6;
        new.active = SlotId::A;
        let (o, n) = (old.encode(), new.encode());
        assert_eq!(pick([&o, &n]).unwrap(), (new.clone(), 1));
        assert_eq!(pick([&n, &o]).unwrap(), (new, 0));
        // A torn newer copy: the older one stands.
        let mut torn = n;
        torn[300] ^= 0x40;
        assert_eq!(pick([&o, &torn]).unwrap(), (old, 0));
        assert_eq!(pick([&[0u8; BLOCK], &[0u8; BLOCK]]), None);
    }
}
