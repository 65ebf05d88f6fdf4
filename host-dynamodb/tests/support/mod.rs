//! Test support: a moto server (a DynamoDB-compatible server on loopback) started and stopped
//! by the tests, and an HTTP proxy that can delay, throttle and record requests.
#![allow(dead_code)]

pub mod moto;
pub mod proxy;
