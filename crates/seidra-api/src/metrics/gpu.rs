//! GPU metrics from NVML, NVIDIA's management library, loaded at run time (`libnvidia-ml.so.1`;
//! nothing of CUDA is needed to build).
//!
//! One background thread samples every device each [`INTERVAL`] and sets the `seidra_gpu_*`
//! gauges; scrapes only read the recorder, so a slow or hung driver call never delays `/metrics`
//! or any request. Without NVML (no NVIDIA driver) or without a device the thread logs once and
//! ends: the series are then absent, never zeros, and GPU alerts cannot fire on a CPU host.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::error::NvmlError;

/// Time between two samples; a scrape sees values at most this old.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// One device's readings. A reading the device does not offer (power on some boards, for
/// example) is `None`, and its series is left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuSample {
    /// NVML device index (the `gpu` label).
    pub index: u32,
    /// Product name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Device UUID (`GPU-…`), stable across reboots.
    pub uuid: String,
    /// Share of the last sample period in which a kernel ran, 0–1.
    pub utilization: Option<f64>,
    /// Device memory allocated, bytes.
    pub memory_used: Option<u64>,
    /// Device memory installed, bytes.
    pub memory_total: Option<u64>,
    /// Core temperature, °C.
    pub temperature: Option<u32>,
    /// Board power draw, watts.
    pub power_watts: Option<f64>,
}

/// Why this process exports no GPU metrics.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// The library is missing or failed to initialise (no NVIDIA driver, container without GPU).
    #[error("NVML is not available: {0}")]
    Nvml(#[from] NvmlError),
    /// The library works but lists no device.
    #[error("NVML lists no GPU")]
    NoDevice,
}

/// Where the collector stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not started, or the first NVML initialisation is still running.
    Starting,
    /// No NVML or no device: no `seidra_gpu_*` series (see [`Unavailable`]).
    Unavailable,
    /// Sampling devices every [`INTERVAL`].
    Sampling,
}

static STATUS: AtomicU8 = AtomicU8::new(0);
static STARTED: OnceLock<()> = OnceLock::new();

/// The collector's state.
pub fn status() -> Status {
    match STATUS.load(Ordering::Acquire) {
        1 => Status::Unavailable,
        2 => Status::Sampling,
        _ => Status::Starting,
    }
}

fn set_status(s: Status) {
    let v = match s {
        Status::Starting => 0,
        Status::Unavailable => 1,
        Status::Sampling => 2,
    };
    STATUS.store(v, Ordering::Release);
}

/// Starts the sampling thread (once per process; later calls do nothing). It records into the
/// global recorder, so call it after installing that.
pub fn start() {
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new().name("seidra-gpu-metrics".to_owned()).spawn(run);
        if let Err(err) = spawned {
            tracing::warn!(%err, "cannot start the GPU metrics thread; no GPU metrics");
            set_status(Status::Unavailable);
        }
    });
}

fn run() {
    // NVML initialisation can take seconds while the driver wakes the devices: off the runtime.
    let sampler = match NvmlSampler::open() {
        Ok(s) => s,
        Err(err) => {
            tracing::info!(%err, "no GPU metrics");
            set_status(Status::Unavailable);
            return;
        }
    };
    tracing::info!(devices = sampler.count, "GPU metrics from NVML");
    set_status(Status::Sampling);
    let mut warned = false;
    loop {
        let samples = sampler.sample(&mut warned);
        record(&samples);
        #[expect(clippy::disallowed_methods, reason = "this thread is ours, outside any async runtime")]
        std::thread::sleep(INTERVAL);
    }
}

/// Reads every device through NVML.
pub struct NvmlSampler {
    nvml: Nvml,
    count: u32,
}

impl std::fmt::Debug for NvmlSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NvmlSampler").field("count", &self.count).finish()
    }
}

impl NvmlSampler {
    /// Loads NVML and counts the devices; fails when there is no library or no device.
    pub fn open() -> Result<Self, Unavailable> {
        let nvml = Nvml::init()?;
        let count = nvml.device_count()?;
        if count == 0 {
            return Err(Unavailable::NoDevice);
        }
        Ok(Self { nvml, count })
    }

    /// One reading per device that answers. Failed readings are skipped (their series keep the
    /// last value); the first failure is logged at warn, later ones at debug.
    pub fn sample(&self, warned: &mut bool) -> Vec<GpuSample> {
        let mut out = Vec::with_capacity(self.count as usize);
        for index in 0..self.count {
            let Some(device) = reading(self.nvml.device_by_index(index), "the device", index, warned) else {
                continue;
            };
            let memory = reading(device.memory_info(), "memory", index, warned);
            out.push(GpuSample {
                index,
                name: reading(device.name(), "the name", index, warned).unwrap_or_default(),
                uuid: reading(device.uuid(), "the UUID", index, warned).unwrap_or_default(),
                utilization: reading(device.utilization_rates(), "utilisation", index, warned)
                    .map(|u| f64::from(u.gpu) / 100.0),
                memory_used: memory.as_ref().map(|m| m.used),
                memory_total: memory.as_ref().map(|m| m.total),
                temperature: reading(device.temperature(TemperatureSensor::Gpu), "the temperature", index, warned),
                power_watts: reading(device.power_usage(), "the power draw", index, warned)
                    .map(|mw| f64::from(mw) / 1000.0),
            });
        }
        out
    }
}

/// The value of one NVML call, or `None` (logged unless the device simply lacks that reading).
fn reading<T>(result: Result<T, NvmlError>, what: &str, index: u32, warned: &mut bool) -> Option<T> {
    let err = match result {
        Ok(v) => return Some(v),
        Err(err) => err,
    };
    if matches!(err, NvmlError::NotSupported) {
        return None; // a reading this board does not have: absent, not an error
    }
    if *warned {
        tracing::debug!(gpu = index, %err, "NVML: cannot read {what}");
    } else {
        *warned = true;
        tracing::warn!(gpu = index, %err, "NVML: cannot read {what} (further failures are logged at debug)");
    }
    None
}

/// Sets the `seidra_gpu_*` gauges of the current recorder from `samples`.
pub fn record(samples: &[GpuSample]) {
    for s in samples {
        let gpu = s.index.to_string();
        metrics::gauge!("seidra_gpu_info", "gpu" => gpu.clone(), "name" => s.name.clone(), "uuid" => s.uuid.clone())
            .set(1.0);
        if let Some(v) = s.utilization {
            metrics::gauge!("seidra_gpu_utilization_ratio", "gpu" => gpu.clone()).set(v);
        }
        if let Some(v) = s.memory_used {
            metrics::gauge!("seidra_gpu_memory_used_bytes", "gpu" => gpu.clone()).set(v as f64);
        }
        if let Some(v) = s.memory_total {
            metrics::gauge!("seidra_gpu_memory_total_bytes", "gpu" => gpu.clone()).set(v as f64);
        }
        if let Some(v) = s.temperature {
            metrics::gauge!("seidra_gpu_temperature_celsius", "gpu" => gpu.clone()).set(f64::from(v));
        }
        if let Some(v) = s.power_watts {
            metrics::gauge!("seidra_gpu_power_watts", "gpu" => gpu).set(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_become_gauges_with_bounded_labels() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let samples = [
            GpuSample {
                index: 0,
                name: "NVIDIA H100 80GB HBM3".into(),
                uuid: "GPU-0b1c".into(),
                utilization: Some(0.42),
                memory_used: Some(1_000_000_000),
                memory_total: Some(80_000_000_000),
                temperature: Some(61),
                power_watts: Some(312.5),
            },
            // A board without a power sensor: that series is absent, the others are there.
            GpuSample { index: 1, name: "NVIDIA T4".into(), uuid: "GPU-9f".into(), ..GpuSample::default() },
        ];
        metrics::with_local_recorder(&recorder, || record(&samples));
        let text = handle.render();
        for line in [
            r#"seidra_gpu_info{gpu="0",name="NVIDIA H100 80GB HBM3",uuid="GPU-0b1c"} 1"#,
            r#"seidra_gpu_utilization_ratio{gpu="0"} 0.42"#,
            r#"seidra_gpu_memory_used_bytes{gpu="0"} 1000000000"#,
            r#"seidra_gpu_memory_total_bytes{gpu="0"} 80000000000"#,
            r#"seidra_gpu_temperature_celsius{gpu="0"} 61"#,
            r#"seidra_gpu_power_watts{gpu="0"} 312.5"#,
            r#"seidra_gpu_info{gpu="1",name="NVIDIA T4",uuid="GPU-9f"} 1"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains(r#"seidra_gpu_power_watts{gpu="1"}"#), "{text}");
    }
}
