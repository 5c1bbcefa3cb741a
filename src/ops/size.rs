//! Checked size arithmetic and fallible allocation for every op that makes an array.
//!
//! Sizes come from users (shapes, strides, paddings), so any sum or product of them can wrap
//! `usize`, and any array they describe can be larger than the machine's memory. Both are
//! errors naming the op, never a wrong shape, a panic or an aborted process:
//!
//! - every size an op computes goes through this module's checked `add`, `mul` and
//!   `elements`, which refuse a wrap as [`Error::InvalidArgument`] with the values involved;
//! - an array of more than [`MAX_ELEMENTS`] is refused before any allocation is tried;
//! - below that bound, buffers are reserved with `try_reserve`, so a machine without the memory
//!   gives [`Error::OutOfMemory`].

use std::mem::MaybeUninit;

use ndarray::{ArrayD, IxDyn};
use rayon::iter::ParallelExtend;

use crate::error::{Error, Result, invalid};
use crate::float::Float;

/// The most elements one array made by an op may hold: 2⁴⁰ (4 TiB of `f32`, 8 TiB of `f64`).
///
/// Why a fixed bound, when `try_reserve` already turns a failed allocation into an error:
/// ndarray requires every array's byte size to fit an `isize`, and the kernels compute flat
/// indices as products of sizes; a bound far below `usize::MAX` keeps all of those far from a
/// wrap. 2⁴⁰ is beyond the memory of any machine adjoint runs on, so it refuses nothing that
/// could have been computed.
pub const MAX_ELEMENTS: usize = 1 << 40;

/// `a + b`, or an error naming `op`, the parameter `param` and both values.
pub(crate) fn add(op: &'static str, param: &'static str, a: usize, b: usize) -> Result<usize> {
    a.checked_add(b)
        .ok_or_else(|| invalid(op, param, (a, b), format!("{a} + {b} overflows usize")))
}

/// `a · b`, or an error naming `op`, the parameter `param` and both values.
pub(crate) fn mul(op: &'static str, param: &'static str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| invalid(op, param, (a, b), format!("{a} · {b} overflows usize")))
}

/// The element count of an array of `shape`, refused if it wraps or exceeds [`MAX_ELEMENTS`];
/// `what` names the array in the message (`"output"`, `"shape"`, ...).
///
/// The bound applies to the product of the nonzero sizes: an empty array (a batch of 0) with
/// astronomically large other axes is refused too, since ndarray cannot describe it and the
/// kernels' per-image bookkeeping would still walk its positions.
pub(crate) fn elements(op: &'static str, what: &'static str, shape: &[usize]) -> Result<usize> {
    let extent = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d.max(1)));
    match extent {
        Some(n) if n <= MAX_ELEMENTS => Ok(shape.iter().product()),
        _ => Err(invalid(
            op,
            what,
            shape,
            format!("holds more than {MAX_ELEMENTS} elements (2^40), the most one array may have"),
        )),
    }
}

/// Values from which [`zeroed`] clears its buffer on rayon's threads.
const PARALLEL_ZEROING: usize = 1 << 17;

/// A zero-filled buffer of `len` values, or [`Error::OutOfMemory`].
///
/// Up to [`PARALLEL_ZEROING`] values, allocated already zeroed (`calloc`), as `vec![0.0; len]`
/// is, but unlike `vec!` a failure is an error, not an abort; larger buffers are reserved and
/// cleared by rayon's threads.
pub(crate) fn zeroed<T: Float>(op: &'static str, what: &'static str, len: usize) -> Result<Vec<T>> {
    use std::any::TypeId;
    let all_zero_bits_is_zero = [TypeId::of::<f32>(), TypeId::of::<f64>()].contains(&TypeId::of::<T>());
    if len > MAX_ELEMENTS || !all_zero_bits_is_zero {
        // A `Float` of a user's own whose zero may have other bits: reserve, then fill.
        let mut v = reserve(op, what, len)?;
        v.resize(len, T::zero());
        return Ok(v);
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    if len >= PARALLEL_ZEROING {
        // Written by rayon's threads. A reused block (mimalloc's, or glibc's heap once its
        // mmap threshold has grown) would otherwise be cleared by one serial `memset` on the
        // calling thread: measured ~4% of a U-Net training step, all of it on the thread the
        // others wait for.
        let mut v = reserve(op, what, len)?;
        v.par_extend(rayon::iter::repeat_n(T::zero(), len));
        return Ok(v);
    }
    let out_of_memory = || Error::OutOfMemory {
        op,
        what,
        elements: len,
        bytes: len.saturating_mul(size_of::<T>()),
    };
    let layout = std::alloc::Layout::array::<T>(len).map_err(|_| out_of_memory())?;
    // SAFETY: `layout` has a nonzero size (len > 0, and T is f32 or f64). The pointer, if not
    // null, is an allocation of the global allocator with `T`'s alignment and room for `len`
    // values, which is what `Vec::from_raw_parts` requires with capacity `len`; all its bytes
    // are zero, and an all-zero f32 or f64 is the value +0.0, so all `len` values are
    // initialised.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout).cast::<T>();
        if ptr.is_null() {
            return Err(out_of_memory());
        }
        Ok(Vec::from_raw_parts(ptr, len, len))
    }
}

/// `len` slots not yet written, or [`Error::OutOfMemory`]: for an output that its producer
/// writes whole (a concat's copies), or whose pieces are cleared ([`zero_fill`]) and written in
/// place on the thread that computes them, so that no separate pass clears the whole buffer
/// first. Turn it into values with [`assume_init`] once every slot has been written.
pub(crate) fn uninit<T>(op: &'static str, what: &'static str, len: usize) -> Result<Vec<MaybeUninit<T>>> {
    let mut v = reserve(op, what, len)?;
    v.resize_with(len, MaybeUninit::uninit);
    Ok(v)
}

/// Writes zero into every slot of `piece` and returns it as the values it now holds.
pub(crate) fn zero_fill<T: Float>(piece: &mut [MaybeUninit<T>]) -> &mut [T] {
    for slot in piece.iter_mut() {
        slot.write(T::zero());
    }
    // SAFETY: every slot was written just above, and `MaybeUninit<T>` has `T`'s layout, so
    // the slice is `piece.len()` initialised values of `T`, borrowed for as long as `piece`.
    unsafe { &mut *(std::ptr::from_mut::<[MaybeUninit<T>]>(piece) as *mut [T]) }
}

/// The values of a buffer from [`uninit`].
///
/// # Safety
/// Every slot of `v` must have been written.
pub(crate) unsafe fn assume_init<T>(v: Vec<MaybeUninit<T>>) -> Vec<T> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: the pointer, length and capacity are those of a live vector whose ownership moves
    // here (`ManuallyDrop` keeps the old one from freeing it); `MaybeUninit<T>` has `T`'s size
    // and alignment, so the allocation's layout is unchanged; and the caller guarantees that
    // every one of the `len` values is initialised.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
}

/// An empty buffer with room for `len` values, or [`Error::OutOfMemory`].
pub(crate) fn reserve<T>(op: &'static str, what: &'static str, len: usize) -> Result<Vec<T>> {
    if len > MAX_ELEMENTS {
        return Err(invalid(
            op,
            what,
            len,
            format!("more than {MAX_ELEMENTS} elements (2^40), the most one array may have"),
        ));
    }
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory {
        op,
        what,
        elements: len,
        bytes: len.saturating_mul(size_of::<T>()),
    })?;
    Ok(v)
}

/// The values of an exact-size iterator in a buffer reserved with `try_reserve`.
pub(crate) fn collect<T>(
    op: &'static str,
    what: &'static str,
    values: impl ExactSizeIterator<Item = T>,
) -> Result<Vec<T>> {
    let mut v = reserve(op, what, values.len())?;
    v.extend(values);
    Ok(v)
}

/// A zero-filled array of `shape`, its size checked ([`elements`]) and its buffer reserved
/// ([`zeroed`]).
pub(crate) fn zeros<T: Float>(op: &'static str, what: &'static str, shape: &[usize]) -> Result<ArrayD<T>> {
    let len = elements(op, what, shape)?;
    array(shape, zeroed(op, what, len)?)
}

/// An array of `shape` holding `value` everywhere, checked as [`zeros`].
pub(crate) fn filled<T: Float>(op: &'static str, what: &'static str, shape: &[usize], value: T) -> Result<ArrayD<T>> {
    let len = elements(op, what, shape)?;
    let mut v = reserve(op, what, len)?;
    v.resize(len, value);
    array(shape, v)
}

/// `values` seen as an array of `shape`; the caller made `values` with `shape`'s element count.
pub(crate) fn array<T>(shape: &[usize], values: Vec<T>) -> Result<ArrayD<T>> {
    let len = values.len();
    ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|e| {
        invalid(
            "array",
            "shape",
            shape,
            format!("does not hold the {len} values computed for it ({e}): a bug in adjoint"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_products_and_sums_are_errors() {
        assert!(add("t", "p", usize::MAX, 1).is_err());
        assert_eq!(add("t", "p", 2, 3).unwrap(), 5);
        assert!(mul("t", "p", usize::MAX / 2 + 1, 2).is_err());
        // 2^62 · 4 wraps to 0 and 2^62+1 · 4 to 4: both refused, not taken for small arrays.
        assert!(elements("t", "shape", &[1 << 62, 4]).is_err());
        assert!(elements("t", "shape", &[(1 << 62) + 1, 4]).is_err());
        assert!(elements("t", "shape", &[1 << 20, 1 << 21]).is_err());
        assert_eq!(elements("t", "shape", &[1 << 20, 1 << 20]).unwrap(), MAX_ELEMENTS);
        assert_eq!(elements("t", "shape", &[0, 1 << 40]).unwrap(), 0);
        assert!(elements("t", "shape", &[0, usize::MAX]).is_err());
        assert!(elements("t", "shape", &[0, 1 << 21, 1 << 20]).is_err());
    }

    #[test]
    fn zeroed_buffers_hold_zeros() {
        for len in [0, 1, 7, PARALLEL_ZEROING - 1, PARALLEL_ZEROING, 1 << 20] {
            let v = zeroed::<f32>("t", "output", len).unwrap();
            assert_eq!((v.len(), v.capacity()), (len, len));
            assert!(v.iter().all(|&x| x == 0.0 && x.is_sign_positive()));
            let v = zeroed::<f64>("t", "output", len).unwrap();
            assert!(v.iter().all(|&x| x == 0.0 && x.is_sign_positive()));
        }
    }

    #[test]
    fn an_allocation_the_machine_cannot_make_is_an_error() {
        assert!(zeroed::<f64>("t", "output", MAX_ELEMENTS + 1).is_err());
        // 2^40 f64 = 8 TiB, more than RAM and swap: Linux's default overcommit heuristic
        // (mode 0) refuses it, so `try_reserve` fails and no memory is touched. Under mode 1
        // ("always") the reservation would succeed, so there is nothing to check.
        if std::fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|m| m.trim() == "0") {
            let e = zeroed::<f64>("t", "output", MAX_ELEMENTS).unwrap_err();
            assert!(
                matches!(e, Error::OutOfMemory { elements, .. } if elements == MAX_ELEMENTS),
                "{e}"
            );
            let e = reserve::<f64>("t", "output", MAX_ELEMENTS).unwrap_err();
            assert!(
                matches!(e, Error::OutOfMemory { elements, .. } if elements == MAX_ELEMENTS),
                "{e}"
            );
            assert!(
                e.to_string()
                    .starts_with("t: cannot allocate output of 1099511627776 elements"),
                "{e}"
            );
        }
    }
}
