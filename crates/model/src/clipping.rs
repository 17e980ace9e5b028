//! Global gradient-norm clipping: the norm over every trainable tensor, and the in-place
//! scaling that bounds it. Both walk the model's tensors, so they stay on the device.

use super::Backend;
use anyhow::Result;
use dfdx::nn::tensor_collection::{RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorRef};
use dfdx::prelude::*;
use dfdx::tensor::Storage;

/// Scaling a gradient buffer in place, for clipping: dfdx has no public operation on a
/// gradient's own storage.
pub(super) trait ScaleInPlace: Storage<f32> {
    fn scale_in_place(buf: &mut Self::Vec, factor: f32) -> Result<()>;
}

impl ScaleInPlace for Cpu {
    fn scale_in_place(buf: &mut Self::Vec, factor: f32) -> Result<()> {
        buf.iter_mut().for_each(|v| *v *= factor);
        Ok(())
    }
}

/// Through the host: clipping is rare enough (only steps over the threshold) that the copy is
/// cheaper than a kernel of our own.
#[cfg(feature = "cuda")]
impl ScaleInPlace for Cuda {
    fn scale_in_place(buf: &mut Self::Vec, factor: f32) -> Result<()> {
        let dev = buf.device();
        let mut host = dev
            .dtoh_sync_copy(&**buf)
            .map_err(|e| anyhow::anyhow!("gradient to host: {e:?}"))?;
        host.iter_mut().for_each(|v| *v *= factor);
        dev.htod_sync_copy_into(&host, &mut **buf)
            .map_err(|e| anyhow::anyhow!("gradient to device: {e:?}"))
    }
}

/// Sum of squared gradient entries of every trainable tensor, and their in-place scaling.
/// Both run as tensor operations, so they stay on the device.
pub(super) struct GradNorm<'a, D: Backend> {
    grads: &'a mut Gradients<f32, D>,
    scale: Option<f32>,
    sum_sq: f64,
    /// A scaling error (the visitor's own error type is the device's).
    failure: Option<anyhow::Error>,
}

impl<D: Backend> TensorVisitor<f32, D> for GradNorm<'_, D> {
    type Viewer = ViewTensorRef;
    type Err = D::Err;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        t: &Tensor<S, f32, D>,
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        self.grads.try_alloc_for(t)?;
        match self.scale {
            None => {
                let flat = self.grads.get(t).reshape_like(&(t.shape().num_elements(),));
                self.sum_sq += f64::from(flat.try_square()?.try_sum::<Rank0, _>()?.array());
            }
            Some(factor) => {
                if let Err(e) = D::scale_in_place(self.grads.get_or_alloc_mut(t)?, factor) {
                    self.failure = Some(e);
                }
            }
        }
        Ok(None)
    }
}

/// Global gradient norm of the tensors that `walk` shows the visitor (each trainable tensor
/// once per call); scales the gradients down to `clip` when it is exceeded (a second walk).
pub(super) fn clip_walked<D: Backend>(
    grads: &mut Gradients<f32, D>,
    clip: Option<f64>,
    mut walk: impl FnMut(&mut GradNorm<'_, D>) -> Result<()>,
) -> Result<f64> {
    let mut op = GradNorm {
        grads,
        scale: None,
        sum_sq: 0.0,
        failure: None,
    };
    walk(&mut op)?;
    let norm = op.sum_sq.sqrt();
    if let Some(max) = clip
        && norm > max
    {
        op.scale = Some((max / norm) as f32);
        walk(&mut op)?;
        if let Some(e) = op.failure {
            return Err(e);
        }
    }
    Ok(norm)
}

/// [`clip_walked`] over every tensor of `model`.
pub(super) fn clip_gradients<D: Backend, M: TensorCollection<f32, D>>(
    model: &M,
    grads: &mut Gradients<f32, D>,
    clip: Option<f64>,
) -> Result<f64> {
    clip_walked(grads, clip, |op| {
        M::iter_tensors(&mut RecursiveWalker { m: model, f: op })
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{e:?}"))
    })
}
