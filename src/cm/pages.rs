//! Large tables read at random (counter lines, probability maps, the match index) live in an
//! anonymous memory map that asks Linux for huge pages: with 4 KiB pages nearly every lookup of
//! a table of many megabytes also misses the TLB, and its page walk stalls the prefetches meant
//! to hide the miss. Where the kernel declines (or elsewhere), the map works the same with small
//! pages; small tables stay on the heap. What a table holds never depends on where it lives.

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

/// Tables at least this large get a map of their own (where the system gives one); smaller ones stay on the heap, where
/// allocation is cheap and the pages are often already there (the lean predictor of `-1` makes
/// a few small maps per 128 KiB segment, and was 10% slower with maps for them).
const MAP_MIN: usize = 4 << 20;

enum Storage<T> {
    Heap(#[allow(dead_code)] Vec<T>),
    Map(#[allow(dead_code)] MmapMut),
}

/// `len` values of `T`, all zero at first.
pub struct Table<T: Zeroed> {
    /// owns the memory `ptr` points to
    _storage: Storage<T>,
    ptr: *mut T,
    len: usize,
}

// SAFETY: a table owns its values as a `Vec` does, so it moves and shares between threads as
// its values do.
unsafe impl<T: Zeroed + Send> Send for Table<T> {}
// SAFETY: as above.
unsafe impl<T: Zeroed + Sync> Sync for Table<T> {}

impl<T: Zeroed> Table<T> {
    pub fn zeroed(len: usize) -> Self {
        let bytes = std::mem::size_of::<T>() * len;
        if bytes >= MAP_MIN {
            // where no map can be had, the heap serves (as it did before maps)
            if let Ok(mut map) = MmapOptions::new().len(bytes).map_anon() {
                #[cfg(target_os = "linux")]
                let _ = map.advise(memmap2::Advice::HugePage);
                let ptr = map.as_mut_ptr() as *mut T;
                return Table {
                    _storage: Storage::Map(map),
                    ptr,
                    len,
                };
            }
        }
        // SAFETY: `Zeroed` says all-zero bytes are a valid `T`.
        let mut v = vec![unsafe { std::mem::zeroed::<T>() }; len];
        let ptr = v.as_mut_ptr();
        Table {
            _storage: Storage::Heap(v),
            ptr,
            len,
        }
    }
}

impl<T: Zeroed> std::ops::Deref for Table<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` starts the storage, which holds `len` values of `T` (a map's all-zero
        // bytes are valid ones; it is page aligned, more than `T` needs) and lives as long as
        // `self`; neither a vector nor a map moves its memory when moved.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: Zeroed> std::ops::DerefMut for Table<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
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
        // a table large enough for a map of its own
        let mut big: Table<u32> = Table::zeroed(MAP_MIN);
        assert!(matches!(big._storage, Storage::Map(_)));
        for i in (0..big.len()).step_by(4099) {
            assert_eq!(big[i], 0);
            big[i] = i as u32;
        }
        assert!((0..big.len()).step_by(4099).all(|i| big[i] == i as u32));
    }
}
