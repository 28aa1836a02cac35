//! *Internal:* Test-only fault injection: lands an interruption at a chosen point of a training run,
//! so that the tests of interrupted runs never depend on how fast the machine is.
//!
//! `train` reads the environment variable `LENET_FAULT` once, at start:
//!
//! - `stop:P:N`: after the group of batches that reaches pattern N of pass P, the training
//!   loop raises its own stop request, the path a SIGINT takes (the run saves its position
//!   and exits with 130).
//! - `kill:P:N`: at the same point the process ends at once, by sending itself SIGKILL:
//!   nothing is saved, as when the machine loses power.
//! - `pause:P:N`: at the same point the run writes `fault: paused in pass P at pattern M`
//!   on stderr and waits until a signal arrives (SIGINT or SIGTERM stop it as usual; SIGKILL
//!   ends it), so a test can send a real signal knowing the run is inside pass P.
//!
//! The loop ends a group of batches at pattern N (rounded up to a whole batch) so the
//! fault lands there on every backend, however many patterns a backend trains per call.
//! - `lose:P:N`: at the same point the GPU backend destroys its device, as a driver reset
//!   or a GPU going away would; the run must stop with its last checkpoint intact and say
//!   how to continue (nothing happens on the CPU backend).
//! - `corrupt:KERNEL,...`: the GPU kernels named (entry points, `c3s4_forward`) are not
//!   dispatched, as if the driver had compiled them wrong: the on-device check (`check`)
//!   must catch it.
//!
//! It is not a user setting: it is not saved in checkpoints, and nothing else reads it.

use crate::{Error, Result};

/// The environment variable read by `Fault::from_env`.
pub const ENV: &str = "LENET_FAULT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Stop,
    Kill,
    Pause,
    Lose,
}

/// The kernels `LENET_FAULT=corrupt:KERNEL,...` names (entry points); none otherwise.
pub fn corrupted() -> Vec<String> {
    match std::env::var(ENV) {
        Ok(s) => s
            .trim()
            .strip_prefix("corrupt:")
            .map(|k| k.split(',').map(|k| k.trim().to_string()).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Where and how a run is interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// The pass (1-based).
    pub epoch: u32,
    /// Patterns of that pass done when the fault lands.
    pub pattern: usize,
}

impl Fault {
    /// `LENET_FAULT` as a fault; None when unset or empty.
    pub fn from_env() -> Result<Option<Fault>> {
        match std::env::var(ENV) {
            Ok(s) if s.trim().starts_with("corrupt:") => Ok(None),
            Ok(s) if !s.trim().is_empty() => Fault::parse(s.trim()).map(Some),
            _ => Ok(None),
        }
    }

    /// `stop:P:N`, `kill:P:N` or `pause:P:N`.
    pub fn parse(s: &str) -> Result<Fault> {
        let bad = || {
            Error::Config(format!(
                "{ENV}={s:?}: expected stop:PASS:PATTERN, kill:PASS:PATTERN, pause:PASS:PATTERN, \
                 lose:PASS:PATTERN or corrupt:KERNEL,... \
                 (a test-only setting; unset it for a normal run)"
            ))
        };
        let mut parts = s.split(':');
        let kind = match parts.next() {
            Some("stop") => FaultKind::Stop,
            Some("kill") => FaultKind::Kill,
            Some("pause") => FaultKind::Pause,
            Some("lose") => FaultKind::Lose,
            _ => return Err(bad()),
        };
        let epoch: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let pattern: usize = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        if parts.next().is_some() || epoch == 0 {
            return Err(bad());
        }
        Ok(Fault {
            kind,
            epoch,
            pattern,
        })
    }

    /// Where a group of batches of pass `epoch` that starts at `at` and would end at `end`
    /// must end instead, so the fault lands on its pattern (rounded up to a whole batch).
    pub fn group_end(&self, epoch: u32, at: usize, end: usize, batch: usize) -> usize {
        let stop_at = self.pattern.div_ceil(batch.max(1)) * batch.max(1);
        if epoch == self.epoch && at < stop_at && stop_at < end {
            stop_at
        } else {
            end
        }
    }

    /// Whether the fault lands after a group of pass `epoch` that ended at `at`: the first
    /// group to reach the fault's pattern.
    pub fn due(&self, epoch: u32, before: usize, at: usize) -> bool {
        epoch == self.epoch && before < self.pattern.max(1) && at >= self.pattern.max(1)
    }
}
