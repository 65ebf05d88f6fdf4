//! Test support: a moto server (a DynamoDB-compatible server on loopback) started and stopped
//! by the tests, an HTTP proxy that can delay, throttle and record requests, and scratch
//! directories.
#![allow(dead_code)]

pub mod moto;
pub mod proxy;
pub mod windows;

use std::path::{Path, PathBuf};

/// A directory of a test's own, emptied at the start and removed when dropped (also when the
/// test panics).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("fleetbreaker-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
