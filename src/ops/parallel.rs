//! Work split over rayon's threads so that no result depends on how many there are.
//!
//! Every helper here cuts its output into pieces whose boundaries depend only on the sizes
//! (a plane, a row block, an outer index), and each piece is computed alone, in the same order
//! as the serial loop would: the same bits come out on one thread or sixteen. Reductions
//! across pieces are not done here; an op that needs one sums its pieces in a fixed order.

use rayon::prelude::*;

/// Elements from which a pass is split over threads: below it, handing the work out costs
/// more than it saves. Shared by the elementwise ops, the conv bias, pooling and reshaping.
pub(crate) const PARALLEL_ELEMENTS: usize = 1 << 15;

/// Calls `f(i, piece)` for the `i`-th `chunk`-long piece of `out` (the last may be shorter),
/// over rayon's threads when `out` is long enough, in order on this thread otherwise.
pub(crate) fn for_each_chunk<T: Send>(out: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    let chunk = chunk.max(1);
    if out.len() >= PARALLEL_ELEMENTS {
        // Pieces small against the threshold are handed out in runs, so a pass over 1-value
        // planes does not become a million tasks.
        let run = (PARALLEL_ELEMENTS / 4).div_ceil(chunk).max(1);
        out.par_chunks_mut(chunk)
            .with_min_len(run)
            .enumerate()
            .for_each(|(i, piece)| f(i, piece));
    } else {
        out.chunks_mut(chunk).enumerate().for_each(|(i, piece)| f(i, piece));
    }
}

/// [`for_each_chunk`] over two outputs cut alike: piece `i` of `a` (`chunk_a` long) goes with
/// piece `i` of `b` (`chunk_b` long).
pub(crate) fn for_each_chunk_pair<A: Send, B: Send>(
    a: &mut [A],
    chunk_a: usize,
    b: &mut [B],
    chunk_b: usize,
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync + Send,
) {
    let (chunk_a, chunk_b) = (chunk_a.max(1), chunk_b.max(1));
    if a.len() >= PARALLEL_ELEMENTS {
        let run = (PARALLEL_ELEMENTS / 4).div_ceil(chunk_a).max(1);
        a.par_chunks_mut(chunk_a)
            .zip(b.par_chunks_mut(chunk_b))
            .with_min_len(run)
            .enumerate()
            .for_each(|(i, (pa, pb))| f(i, pa, pb));
    } else {
        a.chunks_mut(chunk_a)
            .zip(b.chunks_mut(chunk_b))
            .enumerate()
            .for_each(|(i, (pa, pb))| f(i, pa, pb));
    }
}

/// `f(0), f(1), …, f(n − 1)` in a buffer reserved with `try_reserve`, computed by rayon's
/// threads when the work (`n · cost` values touched) is large: each value alone, so the vector
/// is the same as the serial loop's.
pub(crate) fn map_indices<R: Send>(
    op: &'static str,
    what: &'static str,
    n: usize,
    cost: usize,
    f: impl Fn(usize) -> R + Sync + Send,
) -> crate::Result<Vec<R>> {
    let mut out = super::size::reserve(op, what, n)?;
    if n.saturating_mul(cost) >= PARALLEL_ELEMENTS {
        let run = (PARALLEL_ELEMENTS / 4).div_ceil(cost.max(1)).max(1);
        (0..n)
            .into_par_iter()
            .with_min_len(run)
            .map(f)
            .collect_into_vec(&mut out);
    } else {
        out.extend((0..n).map(f));
    }
    Ok(out)
}
