//! Large tables read at random (counter lines, probability maps, the match index) live in an
//! anonymous memory map that asks Linux for huge pages: with 4 KiB pages nearly every lookup of
//! a table of many megabytes also misses the TLB, and its page walk stalls the prefetches meant
//! to hide the miss. Where the kernel declines (or elsewhere), the map works the same with small
//! pages. What a table holds never depends on its pages.

use memmap2::{MmapMut, MmapOptions};

/// Element types for which all-zero bytes are a valid value.
///
/// # Safety
/// An implementor must be valid when every byte of it is zero, and have no padding or drop glue.
pub unsafe trait Zeroed: Copy {}

// SAFETY: plain integers, and arrays of them, are valid as zero bytes.
unsafe impl Zeroed for u16 {}
// SAFETY: as above.
unsafe impl Zeroed for u32 {}
// SAFETY: arrays of valid-as-zero elements are valid as zero bytes.
unsafe impl<T: Zeroed, const N: usize> Zeroed for [T; N] {}

/// `len` values of `T`, all zero at first.
pub struct Table<T: Zeroed> {
    map: MmapMut,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: Zeroed> Table<T> {
    pub fn zeroed(len: usize) -> Self {
        let bytes = (std::mem::size_of::<T>() * len).max(1);
        let map = MmapOptions::new()
            .len(bytes)
            .map_anon()
            .unwrap_or_else(|e| panic!("cannot map {bytes} bytes for a model table: {e}"));
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Table {
            map,
            len,
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: Zeroed> std::ops::Deref for Table<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the map holds `len` values of `T` (all-zero bytes are valid ones), and is page
        // aligned, more than `T` needs.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr() as *const T, self.len) }
    }
}

impl<T: Zeroed> std::ops::DerefMut for Table<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr() as *mut T, self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_start_zero_and_keep_what_is_written() {
        let mut t: Table<[u32; 16]> = Table::zeroed(1000);
        assert_eq!(t.len(), 1000);
        assert!(t.iter().all(|l| l.iter().all(|&c| c == 0)));
        t[999][15] = 7;
        assert_eq!(t[999][15], 7);
        assert_eq!(Table::<u16>::zeroed(0).len(), 0);
    }
}
