//! Where a cell trains: `device: auto | cpu | cuda | cuda:N`.
//!
//! `auto` takes CUDA device 0 when clirlab was built with the `cuda` feature and the device
//! opens, else the CPU. The device is an execution setting: it is kept out of cell ids, and
//! each cell's provenance records the one it used.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The `device` key as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// CUDA when built with it and a GPU opens, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// `cuda` (device 0) or `cuda:N`.
    Cuda(usize),
}

/// Why a device cannot be named or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// A `device` value that is none of the known spellings.
    #[error("expected auto, cpu, cuda or cuda:N, found {0:?}")]
    Unknown(String),
    /// A CUDA device asked of a build without the `cuda` feature.
    #[error("{0}: {WITHOUT_CUDA}")]
    WithoutCuda(DeviceSpec),
    /// A CUDA device that does not open.
    #[error("{spec}: the device does not open ({why}); CUDA_VISIBLE_DEVICES={visible:?}")]
    DoesNotOpen {
        /// The device asked for.
        spec: DeviceSpec,
        /// The driver's (or cudarc's) message.
        why: String,
        /// `CUDA_VISIBLE_DEVICES` as set.
        visible: String,
    },
}

/// The device a cell actually runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedDevice {
    /// The CPU.
    Cpu,
    /// CUDA device N.
    #[cfg(feature = "cuda")]
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, DeviceError> {
        let expected = || DeviceError::Unknown(s.to_string());
        match s {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(expected),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = DeviceError;

    fn try_from(s: String) -> Result<Self, DeviceError> {
        s.parse()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for ResolvedDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolvedDevice::Cpu => f.write_str("cpu"),
            #[cfg(feature = "cuda")]
            ResolvedDevice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Whether it is `auto`.
    pub fn is_auto(&self) -> bool {
        *self == DeviceSpec::Auto
    }

    /// Whether this build can use the device at all (checked when an experiment loads, so a
    /// CUDA request to a CPU build fails before any cell runs).
    pub fn check_build(self) -> Result<(), DeviceError> {
        match self {
            DeviceSpec::Cuda(_) if cfg!(not(feature = "cuda")) => Err(DeviceError::WithoutCuda(self)),
            _ => Ok(()),
        }
    }

    /// The device to run on; an explicit CUDA device that cannot be used is an error.
    pub fn resolve(self) -> Result<ResolvedDevice> {
        match self {
            DeviceSpec::Cpu => Ok(ResolvedDevice::Cpu),
            DeviceSpec::Auto => Ok(cuda_device(0).unwrap_or(ResolvedDevice::Cpu)),
            DeviceSpec::Cuda(ordinal) => cuda_device(ordinal).map_err(|why| anyhow::anyhow!("key `device`: {why}")),
        }
    }
}

/// CUDA device `ordinal`, if it opens (a context is created and dropped). Probed once per
/// process and ordinal.
#[cfg(feature = "cuda")]
fn cuda_device(ordinal: usize) -> Result<ResolvedDevice, DeviceError> {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    static PROBED: Mutex<BTreeMap<usize, Result<ResolvedDevice, DeviceError>>> = Mutex::new(BTreeMap::new());
    let mut probed = PROBED.lock().unwrap_or_else(|e| e.into_inner());
    probed.entry(ordinal).or_insert_with(|| probe(ordinal)).clone()
}

/// cudarc panics (rather than erring) when the driver has no device or the ordinal is out of
/// range, so the probe catches the panic, with the panic message silenced.
#[cfg(feature = "cuda")]
fn probe(ordinal: usize) -> Result<ResolvedDevice, DeviceError> {
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| dfdx::tensor::Cuda::try_build(ordinal, 0).map(|_| ()));
    std::panic::set_hook(hook);
    let why = match outcome {
        Ok(Ok(())) => return Ok(ResolvedDevice::Cuda(ordinal)),
        Ok(Err(e)) => format!("{e:?}"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the CUDA driver failed".into()),
    };
    Err(DeviceError::DoesNotOpen {
        spec: DeviceSpec::Cuda(ordinal),
        why,
        visible,
    })
}

const WITHOUT_CUDA: &str =
    "this clirlab was built without CUDA; build it with scripts/build-cuda.sh (cargo's `cuda` feature)";

#[cfg(not(feature = "cuda"))]
fn cuda_device(ordinal: usize) -> Result<ResolvedDevice, DeviceError> {
    Err(DeviceError::WithoutCuda(DeviceSpec::Cuda(ordinal)))
}

/// Which library runs the CPU kernels' large matrix products, chosen once per process from
/// `CLIRLAB_BLAS`: unset, the prepared `<data_dir>/openblas/` when it is intact (prepared
/// first when `prepare` is true: backbone cells, which fetch registry packages anyway);
/// `off`, the built-in `gemm` crate; any other value, the path of a `scipy-openblas32`
/// library. Returns the backend's name (see `kernels::blas::backend`); each cell logs it,
/// and the frozen-state store keys on it, since the two round differently.
pub fn select_blas(prepare: bool, progress: bool) -> Result<&'static str> {
    use anyhow::Context;
    use clirlab_data::prepare::openblas;
    let blas = super::kernels::blas::backend;
    match std::env::var("CLIRLAB_BLAS") {
        Ok(v) if v == "off" => return Ok(blas()),
        Ok(path) if !path.is_empty() => {
            super::kernels::blas::load(std::path::Path::new(&path))
                .with_context(|| format!("CLIRLAB_BLAS={path}: expected `off` or the path of libscipy_openblas.so"))?;
            return Ok(blas());
        }
        _ => {}
    }
    if blas() != "gemm-crate" {
        return Ok(blas());
    }
    let data_dir = clirlab_data::data_dir();
    let library = if prepare {
        openblas::prepare_openblas(&data_dir, progress)
            .context("preparing OpenBLAS for the CPU kernels (CLIRLAB_BLAS=off uses the built-in GEMM instead)")?
    } else {
        match openblas::prepared_library(&data_dir) {
            Ok(library) => library,
            Err(_) => return Ok(blas()),
        }
    };
    super::kernels::blas::load(&library)?;
    tracing::info!(
        library = %library.display(),
        config = super::kernels::blas::loaded_config().unwrap_or(""),
        "matrix products on OpenBLAS"
    );
    Ok(blas())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        for (text, spec) in [
            ("auto", DeviceSpec::Auto),
            ("cpu", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
        ] {
            assert_eq!(text.parse::<DeviceSpec>().unwrap(), spec);
            let round: DeviceSpec = serde_json::from_value(serde_json::to_value(spec).unwrap()).unwrap();
            assert_eq!(round, spec);
        }
        for bad in ["gpu", "cuda:", "cuda:x", "CPU"] {
            assert!(
                bad.parse::<DeviceSpec>()
                    .unwrap_err()
                    .to_string()
                    .contains("expected auto, cpu, cuda or cuda:N")
            );
        }
    }

    #[test]
    fn cpu_builds_fall_back_or_refuse() {
        assert_eq!(DeviceSpec::Cpu.resolve().unwrap(), ResolvedDevice::Cpu);
        if cfg!(not(feature = "cuda")) {
            assert_eq!(DeviceSpec::Auto.resolve().unwrap(), ResolvedDevice::Cpu);
            let err = DeviceSpec::Cuda(1).resolve().unwrap_err().to_string();
            assert!(
                err.contains("key `device`: cuda:1") && err.contains("without CUDA"),
                "{err}"
            );
        }
    }
}
