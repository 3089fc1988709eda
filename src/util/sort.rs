//! One sort for the whole binary.
//!
//! `slice::sort_unstable` instantiates its quicksort, small-sort, heapsort and pivot code for
//! every element type and comparison: the boot path's 15 sorts came to 62 instantiations and
//! 33 KB of `.text`. Here the algorithm (a heapsort: O(n log n), no allocation, unstable like
//! the calls it replaces) is compiled once and reaches the elements through a trait object, so
//! each call site adds only its comparison. The lists sorted are short (devices, modules, the
//! names in a directory); the indirect call per comparison is not measurable beside the I/O.

/// What the heapsort needs of the slice: compare and swap two positions.
trait Positions {
    fn less(&mut self, a: usize, b: usize) -> bool;
    fn swap(&mut self, a: usize, b: usize);
}

struct Slice<'a, T, F> {
    v: &'a mut [T],
    less: F,
}

impl<T, F: FnMut(&T, &T) -> bool> Positions for Slice<'_, T, F> {
    fn less(&mut self, a: usize, b: usize) -> bool {
        (self.less)(&self.v[a], &self.v[b])
    }
    fn swap(&mut self, a: usize, b: usize) {
        self.v.swap(a, b);
    }
}

/// Sorts `v` so that no element is `less` than the one before it (not stable).
pub fn sort_by<T>(v: &mut [T], less: impl FnMut(&T, &T) -> bool) {
    let n = v.len();
    heapsort(n, &mut Slice { v, less });
}

/// Sorts `v` ascending (not stable: for keys that are unique or whose equal elements are alike).
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, |a, b| a < b);
}

/// Sorts `v` ascending by `key` (not stable).
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| key(a) < key(b));
}

#[inline(never)]
fn heapsort(n: usize, p: &mut dyn Positions) {
    // Build a max-heap, then move its top to the end one by one.
    for start in (0..n / 2).rev() {
        sift_down(p, start, n);
    }
    for end in (1..n).rev() {
        p.swap(0, end);
        sift_down(p, 0, end);
    }
}

fn sift_down(p: &mut dyn Positions, mut node: usize, end: usize) {
    loop {
        let mut child = 2 * node + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && p.less(child, child + 1) {
            child += 1;
        }
        if !p.less(node, child) {
            return;
        }
        p.swap(node, child);
        node = child;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so the test needs no crate and fails the same way twice.
    fn numbers(n: usize, seed: u64) -> Vec<u32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 97) as u32
            })
            .collect()
    }

    #[test]
    fn sorts_as_the_standard_sort_does_for_every_length_up_to_a_hundred() {
        for n in 0..100 {
            let mut ours = numbers(n, 0x9e37_79b9_7f4a_7c15 + n as u64);
            let mut std = ours.clone();
            sort(&mut ours);
            std.sort();
            assert_eq!(ours, std, "length {n}");
        }
    }

    #[test]
    fn sorted_reversed_and_equal_inputs() {
        let mut up: Vec<u32> = (0..50).collect();
        let mut down: Vec<u32> = (0..50).rev().collect();
        let mut same = vec![7u32; 20];
        sort(&mut up);
        sort(&mut down);
        sort(&mut same);
        assert_eq!(up, (0..50).collect::<Vec<_>>());
        assert_eq!(down, (0..50).collect::<Vec<_>>());
        assert_eq!(same, vec![7u32; 20]);
    }

    #[test]
    fn by_key_and_by_comparison() {
        let mut names = vec!["sdb", "vda", "mmcblk0", "sda"];
        sort_by_key(&mut names, |s| s.len());
        assert_eq!(names.iter().map(|s| s.len()).collect::<Vec<_>>(), [3, 3, 3, 7]);
        sort_by(&mut names, |a, b| a > b);
        assert_eq!(names, ["vda", "sdb", "sda", "mmcblk0"]);
    }
}
