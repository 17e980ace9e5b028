//! Borrowing several gradient entries at once, for the CPU kernels' backward passes: the one
//! place where they are turned into simultaneous references.
//!
//! Why: dfdx's `Gradients` lends one entry at a time (`get_or_alloc_mut`), while a backward
//! pass reads its output's gradient and accumulates into its inputs' gradients together. A
//! cloned tensor keeps its id, so two arguments of a kernel may be one tensor (a LayerNorm
//! whose gamma and beta are clones of one tensor, or one table passed as both token and
//! position embeddings); their entries are then one buffer, and two `&mut` to it would be
//! undefined behaviour. So the buffers are checked to be disjoint before they are borrowed,
//! and a kernel given one tensor twice panics. Each id has its own entry and each entry its
//! own heap buffer, so disjoint buffers are exactly different ids (dfdx 0.13 does not make a
//! tensor's id public, so the buffers stand for them).

use dfdx::prelude::{Cpu, Gradients};

/// Raw pointers to the gradient buffers of the tensors or ghosts given, each allocated if
/// absent; `?` returns the allocation error. A pointer stays valid while its entry is in the
/// map: an entry's buffer is its own heap allocation, which other entries' insertion and
/// borrowing do not move.
macro_rules! grad_pointers {
    ($grads:expr, $($tensor:expr),+ $(,)?) => {{
        let grads: &mut ::dfdx::prelude::Gradients<f32, ::dfdx::prelude::Cpu> = $grads;
        $(grads.try_alloc_for($tensor)?;)+
        [$(&mut **grads.get_or_alloc_mut($tensor)? as &mut [f32] as *mut [f32]),+]
    }};
}
pub(super) use grad_pointers;

/// The gradient buffers of the tensors or ghosts given, mutably borrowed together (as an
/// array in their order), each allocated if absent; `?` returns the allocation error.
/// Panics if two of them are one tensor.
macro_rules! grad_buffers {
    ($grads:expr, $($tensor:expr),+ $(,)?) => {{
        let grads: &mut ::dfdx::prelude::Gradients<f32, ::dfdx::prelude::Cpu> = $grads;
        let pointers = $crate::kernels::grads::grad_pointers!(&mut *grads, $($tensor),+);
        // SAFETY: the pointers are entries of `grads`, taken just now, and `grads` stays
        // mutably borrowed for as long as the buffers.
        unsafe { $crate::kernels::grads::disjoint(grads, pointers) }
    }};
}
pub(super) use grad_buffers;

/// `buffers` as mutable slices that borrow `grads`, after checking that no two overlap.
///
/// # Safety
/// Each pointer must point to the buffer of an entry of `grads` (as from [`grad_pointers`]),
/// taken after the last change to `grads`.
pub(super) unsafe fn disjoint<const N: usize>(
    _grads: &mut Gradients<f32, Cpu>,
    buffers: [*mut [f32]; N],
) -> [&mut [f32]; N] {
    for (i, a) in buffers.iter().enumerate() {
        for b in &buffers[i + 1..] {
            assert_apart(*a, *b);
        }
    }
    // SAFETY: live buffers of `grads` (the caller's promise), pairwise disjoint (checked), and
    // `grads`, which owns them, stays borrowed mutably while they live.
    buffers.map(|b| unsafe { &mut *b })
}

/// `read` as a shared slice that borrows `grads`, beside the buffers `written` as raw pointers
/// to write through; those may be one tensor's (its gradients then add up in one buffer), but
/// none may overlap `read`. A buffer taken more than once comes back as the pointer taken last
/// (in the order of `written`), since taking it again ended the earlier borrows.
///
/// # Safety
/// As for [`disjoint`], for `read` and every pointer of `written`, taken in their order.
pub(super) unsafe fn read_beside<const N: usize>(
    _grads: &mut Gradients<f32, Cpu>,
    read: *mut [f32],
    written: [*mut [f32]; N],
) -> (&[f32], [*mut f32; N]) {
    for w in written {
        assert_apart(read, w);
    }
    let last_taken = |w: *mut [f32]| {
        let same = written.iter().rev().find(|o| o.cast::<f32>() == w.cast::<f32>());
        same.copied().unwrap_or(w).cast::<f32>()
    };
    // SAFETY: a live buffer of `grads` (the caller's promise) that no written pointer overlaps.
    (unsafe { &*read }, written.map(last_taken))
}

fn assert_apart(a: *mut [f32], b: *mut [f32]) {
    let range = |p: *mut [f32]| {
        let start = p.cast::<f32>() as usize;
        start..start + p.len() * size_of::<f32>()
    };
    let (a, b) = (range(a), range(b));
    let overlap = !a.is_empty() && !b.is_empty() && a.start < b.end && b.start < a.end;
    assert!(
        !overlap,
        "a kernel was given one tensor as two different arguments (e.g. a LayerNorm whose gamma \
         and beta are clones of one tensor, or one table as both token and position embeddings): \
         their gradients would be one buffer borrowed twice; pass distinct tensors"
    );
}
