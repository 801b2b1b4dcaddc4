//! The microphone, through cpal: ALSA's default device on Linux (which
//! PipeWire and PulseAudio serve), CoreAudio on macOS. Blocks of whatever
//! the device gives are mixed to mono, resampled to 16 kHz and handed to
//! the recorder through a bounded channel; when the recorder falls behind
//! blocks are dropped and counted, never queued without bound.

use super::wav::{downmix, Resampler};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

/// An open input stream. Recording stops when it is dropped (it must stay
/// on the thread that opened it).
pub struct Mic {
    _stream: cpal::Stream,
    /// "default (48000 Hz, 2 channels, f32)".
    pub description: String,
}

/// Open `device` (empty: the default input) and send 16 kHz mono blocks
/// to `tx`. `errors` receives what the device reports while running (a
/// device unplugged). `dropped` counts blocks the recorder had no room for.
pub fn open(
    device: &str,
    tx: SyncSender<Vec<i16>>,
    errors: SyncSender<String>,
    dropped: Arc<AtomicU64>,
) -> Result<Mic, String> {
    let host = cpal::default_host();
    let dev = if device.is_empty() {
        host.default_input_device()
            .ok_or_else(|| "no microphone: the system has no default input device".to_owned())?
    } else {
        let mut found = None;
        let mut names = Vec::new();
        for d in host
            .input_devices()
            .map_err(|e| format!("cannot list input devices: {e}"))?
        {
            let name = d.name().unwrap_or_default();
            if name == device {
                found = Some(d);
                break;
            }
            names.push(name);
        }
        found.ok_or_else(|| {
            format!(
                "no input device named {device:?} (there are: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        })?
    };
    let name = dev.name().unwrap_or_else(|_| "default".into());
    let supported = dev
        .default_input_config()
        .map_err(|e| format!("{name}: cannot read its input format: {e}"))?;
    let format = supported.sample_format();
    let config: cpal::StreamConfig = supported.config();
    let channels = usize::from(config.channels.max(1));
    let rate = config.sample_rate.0;
    let mut resampler = Resampler::new(rate);
    let mut deliver = move |mono: Vec<f32>| {
        let mut out = Vec::with_capacity(mono.len());
        resampler.push(&mono, &mut out);
        if tx.try_send(out).is_err() {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    let on_error = move |e: cpal::StreamError| {
        let _ = errors.try_send(e.to_string());
    };
    let built = match format {
        cpal::SampleFormat::F32 => dev.build_input_stream(
            &config,
            move |d: &[f32], _: &cpal::InputCallbackInfo| deliver(downmix(d, channels)),
            on_error,
            None,
        ),
        cpal::SampleFormat::I16 => dev.build_input_stream(
            &config,
            move |d: &[i16], _: &cpal::InputCallbackInfo| {
                let f: Vec<f32> = d.iter().map(|&s| f32::from(s) / 32768.0).collect();
                deliver(downmix(&f, channels))
            },
            on_error,
            None,
        ),
        cpal::SampleFormat::I32 => dev.build_input_stream(
            &config,
            move |d: &[i32], _: &cpal::InputCallbackInfo| {
                let f: Vec<f32> = d.iter().map(|&s| s as f32 / 2_147_483_648.0).collect();
                deliver(downmix(&f, channels))
            },
            on_error,
            None,
        ),
        other => return Err(format!("{name}: unsupported sample format {other}")),
    };
    let stream = built.map_err(|e| format!("{name}: cannot open for recording: {e}"))?;
    stream
        .play()
        .map_err(|e| format!("{name}: cannot start recording: {e}"))?;
    Ok(Mic {
        _stream: stream,
        description: format!("{name} ({rate} Hz, {channels} channel(s), {format})"),
    })
}
