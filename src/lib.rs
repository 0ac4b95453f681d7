//! GridWhistle: the 吹哨报到 · 接诉即办 service-request backend.

pub mod clock;
pub mod config;
pub mod context;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod limits;
pub mod media;

pub mod metrics;

pub mod repo;
pub mod service;
pub mod startup;
pub mod statements;
pub mod storage;
pub mod telemetry;
pub mod workers;
